"""From a question to the graph: which entities it names, which relations it asks about.

Entities are found four ways, each with a score in [0, 1]:

- ``exact``: an n-gram of the question equals an entity's label (after stemming:
  "the Aurora lamps" finds "Aurora Lamp"), 1.0; ``alias``: equals an alias, 0.95.
  Both are one indexed SQL lookup, so they cost the same at a million triples.
- ``fuzzy``: a run of content words is close to a name (rapidfuzz ratio ≥ 88, so
  "Frank Herbet" finds "Frank Herbert"), 0.9 × ratio.
- ``embedding``: only when nothing else matched, a run of words whose MiniLM vector
  is close (cosine ≥ 0.8) to a name's, 0.9 × cosine. Names are embedded once per
  graph version, and only while there are at most ``max_embedded_names``.

Relations are found by their label and aliases (every stemmed word present, 1.0;
some of them, less), by the aliases the asking user's corrections taught
(:mod:`~dialoop.knowledge.teaching`), and by the cosine between the question and the
phrase.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from rapidfuzz import fuzz, process

from dialoop.engine.embedding import Embedder
from dialoop.knowledge.graph import Graph
from dialoop.knowledge.traversal import relation_end_types
from dialoop.knowledge.words import (
    QUESTION_WORDS,
    Token,
    joint,
    root,
    split_name,
    tokenize,
    verb_forms,
    verb_roots,
)
from dialoop.learn.relations import phrases as table_phrases
from dialoop.learn.relations import relations as table_relations

__all__ = ["Link", "Linker", "RelationMatcher", "RelationMention", "select_links"]

log = logging.getLogger(__name__)

MAX_NGRAM = 6
TABLE_SCORE = 0.9  # a relation named by the shared table's words, not the graph's own
_METHOD_RANK = {"exact": 0, "alias": 0, "fuzzy": 1, "embedding": 2}


@dataclass(frozen=True)
class Link:
    """An entity the question names."""

    node_id: int
    name: str  # the name that matched
    mention: str  # the words of the question
    start: int  # token span [start, end)
    end: int
    method: str  # "exact" | "alias" | "fuzzy" | "embedding"
    score: float

    def to_dict(self) -> dict[str, object]:
        return {"node": self.node_id, "name": self.name, "mention": self.mention,
                "method": self.method, "score": round(self.score, 3)}


@dataclass(frozen=True)
class RelationMention:
    """A relation the question seems to ask about."""

    relation_id: int
    key: str
    label: str
    score: float
    lexical: bool  # all words of one of its phrases are in the question
    positions: frozenset[int]  # tokens that matched (empty for an embedding match)
    # Named with the prefix "co-" ("co-starred with X"): those who share a fact of this
    # relation with X, i.e. the relation walked there and back, X left out.
    joint: bool = False

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"relation": self.key, "score": round(self.score, 3),
                                  "lexical": self.lexical}
        if self.joint:
            out["joint"] = True
        return out


def _content(tok: Token) -> bool:
    return not tok.stop and tok.lower not in QUESTION_WORDS


class _NameCache:
    """Names (and their vectors) per user, rebuilt when the graph's names change."""

    def __init__(self, size: int = 16) -> None:
        self._items: OrderedDict[str, tuple[tuple[int, int], list[tuple[int, str]], list[str],
                                            np.ndarray | None]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, graph: Graph, user: str) -> tuple[list[tuple[int, str]], list[str], str]:
        version = graph.name_version()
        with self._lock:
            item = self._items.get(user)
            if item is None or item[0] != version:
                names = [(nid, name) for nid, name, _ in graph.names(user)]
                item = (version, names, [n.lower() for _, n in names], None)
                self._items[user] = item
                if len(self._items) > self._size:
                    self._items.popitem(last=False)
            self._items.move_to_end(user)
            return item[1], item[2], user

    def vectors(self, user: str, embedder: Embedder) -> np.ndarray:
        with self._lock:
            version, names, lowers, vectors = self._items[user]
        if vectors is None:
            vectors = embedder.embed([n for _, n in names])
            with self._lock:
                if user in self._items and self._items[user][0] == version:
                    self._items[user] = (version, names, lowers, vectors)
        return vectors


class Linker:
    """Finds the entities a question names."""

    def __init__(
        self,
        graph: Graph,
        embedder: Embedder | None = None,
        *,
        fuzzy_cutoff: float = 88.0,
        embedding_cutoff: float = 0.8,
        max_embedded_names: int = 20_000,
    ) -> None:
        self.graph = graph
        self.embedder = embedder
        self.fuzzy_cutoff = fuzzy_cutoff
        self.embedding_cutoff = embedding_cutoff
        self.max_embedded_names = max_embedded_names
        self._names = _NameCache()

    def link(self, question: str | Sequence[Token], user: str,
             *, skip: frozenset[int] = frozenset()) -> list[Link]:
        """Every candidate link, best first (they may overlap: see :func:`select_links`).

        ``skip``: token positions that must not be part of a name (e.g. relation words).
        """
        tokens = tokenize(question) if isinstance(question, str) else list(question)
        links = self._exact(tokens, user)
        covered = {i for link in select_links(links) for i in range(link.start, link.end)}
        runs = _runs(tokens, covered | skip)
        if runs:
            links += self._fuzzy(tokens, runs, user)
        if not links and runs and self.embedder is not None:
            links += self._embedding(tokens, runs, user)
        return sorted(links, key=lambda x: (_METHOD_RANK[x.method], x.start - x.end, -x.score))

    def _exact(self, tokens: Sequence[Token], user: str) -> list[Link]:
        grams: dict[str, list[tuple[int, int]]] = {}
        for i in range(len(tokens)):
            for j in range(i + 1, min(i + MAX_NGRAM, len(tokens)) + 1):
                if all(t.stop or t.lower in QUESTION_WORDS for t in tokens[i:j]):
                    continue
                grams.setdefault(" ".join(t.stem for t in tokens[i:j]), []).append((i, j))
        links = []
        for node_id, n, name, kind in self.graph.names_matching(grams, user):
            for i, j in grams[n]:
                links.append(Link(node_id, name, _mention(tokens, i, j), i, j,
                                  "exact" if kind == "label" else "alias",
                                  1.0 if kind == "label" else 0.95))
        return _dedupe(links)

    def _fuzzy(self, tokens: Sequence[Token], runs: list[tuple[int, int]], user: str
               ) -> list[Link]:
        names, lowers, _ = self._names.get(self.graph, user)
        if not names:
            return []
        links = []
        for i, j in _spans(runs, max_len=4):
            text = " ".join(t.lower for t in tokens[i:j])
            if len(text) < 5:
                continue
            for _, score, idx in process.extract(text, lowers, scorer=fuzz.ratio,
                                                 score_cutoff=self.fuzzy_cutoff, limit=3):
                node_id, name = names[idx]
                links.append(Link(node_id, name, _mention(tokens, i, j), i, j, "fuzzy",
                                  0.9 * score / 100))
        return _dedupe(links)

    def _embedding(self, tokens: Sequence[Token], runs: list[tuple[int, int]], user: str
                   ) -> list[Link]:
        assert self.embedder is not None
        names, _, _ = self._names.get(self.graph, user)
        if not names:
            return []
        if len(names) > self.max_embedded_names:
            log.debug("%d names: too many to embed, skipping embedding links", len(names))
            return []
        vectors = self._names.vectors(user, self.embedder)  # (N, dim)
        spans = [(i, j) for i, j in runs if j - i <= 5]
        if not spans:
            return []
        queries = self.embedder.embed([_mention(tokens, i, j) for i, j in spans])  # (S, dim)
        sims = queries @ vectors.T  # (S, N): cosines, the vectors are normalized
        links = []
        for row, (i, j) in enumerate(spans):
            best = int(np.argmax(sims[row]))
            if sims[row, best] >= self.embedding_cutoff:
                node_id, name = names[best]
                links.append(Link(node_id, name, _mention(tokens, i, j), i, j, "embedding",
                                  0.9 * float(sims[row, best])))
        return links


def select_links(links: Sequence[Link]) -> list[Link]:
    """Non-overlapping spans, best first; every link of a chosen span is kept (ambiguity)."""
    chosen: list[Link] = []
    taken: set[int] = set()
    spans: set[tuple[int, int]] = set()
    for link in sorted(links, key=lambda x: (_METHOD_RANK[x.method], x.start - x.end,
                                             -x.score)):
        span = (link.start, link.end)
        if span in spans:
            if link.score >= max(c.score for c in chosen if (c.start, c.end) == span) - 0.06:
                chosen.append(link)
            continue
        if taken.isdisjoint(range(link.start, link.end)):
            chosen.append(link)
            spans.add(span)
            taken.update(range(link.start, link.end))
    return chosen


class RelationMatcher:
    """Scores the graph's relations against a question."""

    def __init__(self, graph: Graph, embedder: Embedder | None = None,
                 *, embedding_floor: float = 0.45) -> None:
        self.graph = graph
        self.embedder = embedder
        self.embedding_floor = embedding_floor
        # (relation id, key, label, phrase, its roots, whether the relation is bare: no
        # label or alias beyond its own name)
        self._phrases: list[tuple[int, str, str, str, tuple[str, ...], bool]] = []
        # relation id → the relations of the shared relation-word table its own words name
        # ("starred_actors" → performer, "headquarteredIn" → location)
        self._named: dict[int, tuple[str, str, frozenset[str]]] = {}
        self._vectors: np.ndarray | None = None
        self._version: object = None
        self._lock = threading.Lock()

    def vocabulary(self, user: str | None = None) -> set[str]:
        """Every root (:func:`~dialoop.knowledge.words.root`) in some relation phrase (and,
        with ``user``, in the aliases their corrections taught)."""
        self._refresh()
        return {s for *_, stems, _ in [*self._phrases, *self._taught(user)] for s in stems}

    def match(self, tokens: Sequence[Token], free: set[int], user: str | None = None
              ) -> list[RelationMention]:
        """Relations mentioned by the tokens at positions ``free``, best first; with
        ``user``, the relation aliases that user's corrections taught count too."""
        self._refresh()
        taught = self._taught(user)
        words = self._joint_words(tokens, free, taught)  # "co-starred" → "starred"
        together = frozenset(i for i in words if _partners(tokens, i))
        by_stem: dict[str, list[int]] = {}
        for i in free:
            by_stem.setdefault(root(words.get(i, tokens[i].text)), []).append(i)
        best: dict[int, RelationMention] = {}
        for rid, key, label, _, stems, bare in [*self._phrases, *taught]:
            hits = [s for s in stems if s in by_stem]
            if not hits:
                continue
            fraction = len(hits) / len(stems)
            # A relation that carries only its own name: half of a two-word name is a
            # mention ("acted in" names "starred_actors", "released" "release_year").
            lexical = fraction == 1.0 or (bare and len(stems) == 2 and len(set(hits)) == 1)
            score = 1.0 if fraction == 1.0 else 0.8 if lexical else 0.6 * fraction
            positions = frozenset(i for s in hits for i in by_stem[s])
            old = best.get(rid)
            if old is None or (score, len(positions)) > (old.score, len(old.positions)):
                best[rid] = RelationMention(rid, key, label, score, lexical, positions,
                                            bool(positions & together))
        self._add_table_matches(tokens, free, best, words, together)
        # Words no relation name explains may still mean one ("whose wife" ~ spouse): ask
        # the embedder about them only (a MiniLM call costs more than all the SQL).
        explained = {i for m in best.values() if m.lexical for i in m.positions}
        unexplained = [i for i in sorted(free) if i not in explained and _content(tokens[i])]
        if self.embedder is not None and self._phrases and unexplained:
            text = " ".join(tokens[i].text for i in sorted(free) if _content(tokens[i]))
            self._add_embedding_matches(text, best)
        return sorted(best.values(), key=lambda m: -m.score)

    def _joint_words(self, tokens: Sequence[Token], free: set[int],
                     taught: Sequence[tuple[int, str, str, str, tuple[str, ...], bool]]
                     ) -> dict[int, str]:
        """The free words with the prefix "co-", each as the word after it ("co-starred"
        → "starred"). Written as one word ("costarred"), only when the whole word names
        no relation and the rest does (so "costume" or "council" are left alone)."""
        known: set[str] | None = None
        out: dict[int, str] = {}
        for i in free:
            found = joint(tokens[i].text)
            if found is None:
                continue
            rest, hyphen = found
            if not hyphen:
                if known is None:
                    known = {r for *_, stems, _ in [*self._phrases, *taught] for r in stems}
                if root(tokens[i].text) in known or root(rest) not in known:
                    continue
            out[i] = rest
        return out

    def prefer_fitting(self, mentions: Sequence[RelationMention], anchors: Sequence[int],
                       classes: Sequence[int], user: str) -> list[RelationMention]:
        """Of relations the same words name equally well, by the shared table's reading
        ("based in": ``headquarteredIn`` and ``locatedIn``), keep those that fit what the
        question is about. A relation fits a named individual (``anchors``) when the
        graph's triples show one of its classes as the relation's domain (the classes of
        its subjects) or, read inversely, its range (of its objects): a company is
        headquartered somewhere, a city located. Where some of the tied relations fit
        and others do not, the others go; where several fit (a city: the range of one,
        the domain of the other), those whose ends are also of a class the question names
        (``classes``: "companies based in X") beat those that are not. Where none fits
        (the words are about a later hop: "the maker of X based in …") or the graph has
        no types, the tie stays for the path to settle. The graph's own words, matched
        twice ("founded": the founder, the founding year), are left to the path too."""
        groups: dict[tuple[float, frozenset[int]], list[RelationMention]] = {}
        for m in mentions:
            if m.positions and not m.lexical:
                groups.setdefault((round(m.score, 6), m.positions), []).append(m)
        tied = [g for g in groups.values() if len(g) > 1]
        if not tied or not anchors:
            return list(mentions)
        own = {c for of in self.graph.types_of(anchors, user).values() for c in of}
        if not own:
            return list(mentions)
        named = set(classes)
        rids = sorted({m.relation_id for g in tied for m in g})
        ends = relation_end_types(self.graph, rids, sorted(own | named), user)

        def seen(m: RelationMention) -> set[int]:
            return ends[m.relation_id][0] | ends[m.relation_id][1]

        dropped: set[int] = set()
        for group in tied:
            fitting = [m for m in group if seen(m) & own]
            if not fitting:
                continue
            best = [m for m in fitting if seen(m) & named] or fitting
            dropped |= {m.relation_id for m in group} - {m.relation_id for m in best}
        return [m for m in mentions if m.relation_id not in dropped]

    def _add_table_matches(self, tokens: Sequence[Token], free: set[int],
                           best: dict[int, RelationMention],
                           words: dict[int, str] | None = None,
                           together: frozenset[int] = frozenset()) -> None:
        """Relations the question names in other words than the graph's: the words of the
        shared relation table (:mod:`dialoop.learn.relations`, the correction memory's)
        that say a relation the graph relation's own name also says ("based in" and
        "headquarteredIn" both say *location*; "appears in" and "starred_actors" both say
        *performer*). A match of this kind counts a little less than the graph's own words."""
        if not self._named:
            return
        # Words the graph's own names explain keep that reading ("headquartered" is
        # headquarteredIn, not every relation the table calls a location), and half of a
        # relation's name is no mention of it ("publication date" is not "publication
        # year"): the table does not make it one.
        explained = {i for m in best.values() for i in m.positions}
        words = words or {}
        order = sorted(free)
        text, starts = "", []
        for i in order:  # the free words, with each one's offset in the joined text
            starts.append(len(text) + (1 if text else 0))
            word = words.get(i, tokens[i].text)
            text = f"{text} {word}" if text else word
        for start, end, names in table_phrases(text):
            positions = frozenset(i for i, at in zip(order, starts, strict=True)
                                  if start <= at < end)
            if positions & explained or not any(_content(tokens[i]) for i in positions):
                continue  # explained already, or only "where is": a question, not a relation
            for rid, (key, label, named) in self._named.items():
                if not names & named:
                    continue
                old = best.get(rid, _NONE)
                if old.score < TABLE_SCORE:
                    # not lexical: weaker than the graph's own words where both apply
                    best[rid] = RelationMention(rid, key, label, TABLE_SCORE, False, positions,
                                                bool(positions & together))
                elif old.positions:
                    # named by its own words too ("products … made by"): these words are
                    # the same relation asked, not a second one
                    best[rid] = replace(old, positions=old.positions | positions)

    def _add_embedding_matches(self, text: str, best: dict[int, RelationMention]) -> None:
        assert self.embedder is not None
        with self._lock:
            if self._vectors is None:
                self._vectors = self.embedder.embed([p[3] for p in self._phrases])  # (P, dim)
            vectors, phrases = self._vectors, self._phrases
        sims = vectors @ self.embedder.embed([text])[0]  # (P,)
        for (rid, key, label, *_), sim in zip(phrases, sims.tolist(), strict=True):
            old = best.get(rid, _NONE)
            if sim >= self.embedding_floor and not old.lexical and sim > old.score:
                best[rid] = RelationMention(rid, key, label, sim, False, frozenset())

    def _taught(self, user: str | None) -> list[tuple[int, str, str, str, tuple[str, ...],
                                                      bool]]:
        """The phrases of the relation aliases ``user`` sees (taught by corrections: their
        own and global ones), read per question: one small indexed query."""
        if user is None:
            return []
        phrases = []
        for rid, key, label, phrase in self.graph.relation_aliases(user):
            toks = tokenize(phrase)
            stems = tuple(root(t.text) for t in toks if _content(t))
            if stems:
                phrases.append((rid, key, label, phrase, stems, False))
        return phrases

    def _refresh(self) -> None:
        relations = self.graph.relations()
        version = tuple((r[0], r[2], tuple(r[3])) for r in relations)
        with self._lock:
            if version == self._version:
                return
            phrases = []
            named: dict[int, tuple[str, str, frozenset[str]]] = {}
            for rid, key, label, aliases in relations:
                # The graph's own vocabulary: its label, aliases and key split into words
                # ("headquarteredIn" → "headquartered in"), compared by derivational root
                # so "acted", "actors" and "starred actors" meet without an alias.
                texts = {label, split_name(label), *aliases}
                said = [n for t in (split_name(label), split_name(key)) if "://" not in t
                        for n in table_relations(t)]
                # A relation named by a noun derived from a verb ("product" of "produce":
                # company → item) is asked about with that verb or its agent noun: "who
                # produces X", "its producer" are the relation's own words, and the
                # table's words for what they say ("makes", "maker") name it too.
                verbs = _verb_readings(label, key)
                texts |= set(verbs)
                if not said:
                    said = [n for forms in verbs.values() for f in forms
                            for n in table_relations(f)]
                if said:
                    named[rid] = (key, label, frozenset().union(*said))
                bare = not aliases and split_name(label) == split_name(key)
                if "://" not in key:
                    texts.add(split_name(key))
                for text in sorted(texts):  # sorted: ties break the same way in every run
                    toks = tokenize(text)
                    content = tuple(root(t.text) for t in toks if _content(t))
                    stems = content or tuple(root(t.text) for t in toks)
                    if stems:
                        phrases.append((rid, key, label, text, stems, bare and bool(content)))
            self._phrases, self._vectors, self._version = phrases, None, version
            self._named = named


_NONE = RelationMention(0, "", "", 0.0, False, frozenset())


# After a "co-" word, these make it a question about partners ("co-starred with X").
_WITH = frozenset(["with", "alongside"])


def _partners(tokens: Sequence[Token], i: int) -> bool:
    """Whether the "co-" word at ``i`` asks for the partners of someone: "co-starred
    with X", "X's co-stars" (a possessive the tokenizer dropped: "'s " between the
    words) — not "Which films did X co-star in?", which asks for the films."""
    if i + 1 < len(tokens) and tokens[i + 1].lower in _WITH:
        return True
    if i > 0 and tokens[i].start >= 0 and tokens[i - 1].end >= 0:
        return tokens[i].start - tokens[i - 1].end == 3  # "Castell's co-stars"
    return False


def _verb_readings(label: str, key: str) -> dict[str, list[str]]:
    """The relation's name with a noun derived from a verb said as that verb ("product"
    → "produce"), each with the verb's forms ("produced", "producer", …); {} when no
    word of the name is such a noun."""
    out: dict[str, list[str]] = {}
    for name in {split_name(label), split_name(key)}:
        if "://" in name:
            continue
        words = name.split()
        for n, word in enumerate(words):
            for verb in sorted(verb_roots(word) - {root(word)}):
                forms = verb_forms(verb)
                if forms:  # said as its past form, a word ("produced", not "produc")
                    said = next((f for f in forms if f.endswith("ed")), forms[0])
                    out[" ".join([*words[:n], said, *words[n + 1:]])] = forms
    return out


def _mention(tokens: Sequence[Token], i: int, j: int) -> str:
    return " ".join(t.text for t in tokens[i:j])


def _dedupe(links: list[Link]) -> list[Link]:
    best: dict[tuple[int, int, int], Link] = {}
    for link in links:
        k = (link.node_id, link.start, link.end)
        if k not in best or link.score > best[k].score:
            best[k] = link
    return list(best.values())


def _runs(tokens: Sequence[Token], skip: set[int]) -> list[tuple[int, int]]:
    """Maximal runs of content words not in ``skip`` (candidates for fuzzy/embedding links)."""
    runs, start = [], None
    for i, tok in enumerate([*tokens, None]):
        ok = tok is not None and i not in skip and _content(tok) and not tok.lower.isdigit()
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _spans(runs: list[tuple[int, int]], max_len: int) -> list[tuple[int, int]]:
    return [(i, j) for a, b in runs for i in range(a, b)
            for j in range(i + 1, min(b, i + max_len) + 1)]

