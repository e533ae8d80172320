"""Answering a question from the graph: the graph reasons, a template puts it into words.

1. **Understand** (:func:`analyse`): link entities, tell classes ("products") from
   individuals ("Aurora Lamp"), score relations on the words left over, and spot
   comparisons ("under 20 euros"), counts ("how many") and superlatives ("cheapest").
2. **Query**: a question about an individual is a *path* query: one recursive SQL
   walk of 1–3 hops from it along the mentioned relations, in either direction;
   the best relation sequence wins (each hop must be asked for, every clearly
   named relation must be used). A question about a class or with a constraint is
   a *set* query (members ∩ links to the named individuals ∩ numeric filters),
   counted or ordered as asked.
3. **Answer or decline**: an :class:`Answer` with the values, the triples it rests
   on, and a sentence (:mod:`~dialoop.knowledge.phrasing`). A question that names
   something in the graph, or asks for a relation the graph has about something it
   does not know, but that the graph cannot answer is ``unknown``: the caller says
   "I don't know" rather than guess. Anything else is ``unrelated``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from dialoop.knowledge import phrasing
from dialoop.knowledge.graph import TYPE, Graph, TripleView
from dialoop.knowledge.linking import Link, Linker, RelationMatcher, RelationMention, select_links
from dialoop.knowledge.traversal import (
    Hop,
    Path,
    SetQuery,
    bridge_relations,
    class_nodes,
    described,
    numeric_relations,
    select_set,
    sole_subject,
    walk,
)
from dialoop.knowledge.words import QUESTION_WORDS, Token, stem, tokenize

__all__ = ["Analysis", "Answer", "Reasoner", "analyse"]

MIN_RELATION_SCORE = 0.55  # below this a relation is not a candidate hop
MIN_ANCHOR_SCORE = 0.75
BRIDGE_SCORE = MIN_RELATION_SCORE + 0.1
CLASS_BONUS = 0.2  # "which company …": paths ending at companies
HOP_COST = 0.1  # each hop must earn its place: prefer the shorter of two explanations
ANSWER_TYPE_BONUS = 0.3  # "who"/"where" want an entity, "when"/"how much" a value
_VALUE_WORDS = {"year", "date", "much", "many", "heavy", "old", "tall", "long", "big", "large",
                "expensive", "cheap", "far", "often"}

_NUMBER = r"(?P<cur>[€$£])?\s*(?P<num>\d+(?:[.,]\d+)?)\s*(?P<unit>euros?|eur|dollars?|usd|%)?"
_COMPARATORS = [  # (pattern, operator); longest phrases first
    (r"at most|no more than|up to|maximum of", "<="),
    (r"at least|no less than|minimum of", ">="),
    (r"less than|fewer than|cheaper than|lower than|smaller than|shorter than|earlier than|"
     r"under|below|before", "<"),
    (r"more than|greater than|higher than|larger than|bigger than|longer than|later than|"
     r"more expensive than|over|above|after|exceeding", ">"),
    (r"exactly|equal to", "="),
]
_BETWEEN = re.compile(rf"\bbetween\s+{_NUMBER}\s+and\s+{_NUMBER.replace('?P<', '?P<b_')}", re.I)
# Superlative word -> (order, a word naming the relation it usually means, if any)
_SUPERLATIVES = {
    "cheapest": ("asc", "price"), "most expensive": ("desc", "price"),
    "least expensive": ("asc", "price"), "priciest": ("desc", "price"),
    "lowest": ("asc", None), "smallest": ("asc", None), "fewest": ("asc", None),
    "shortest": ("asc", "length"), "lightest": ("asc", "weight"), "earliest": ("asc", None),
    "oldest": ("asc", None), "first": ("asc", None),
    "highest": ("desc", None), "largest": ("desc", None), "biggest": ("desc", None),
    "greatest": ("desc", None), "longest": ("desc", "length"), "heaviest": ("desc", "weight"),
    "tallest": ("desc", "height"), "newest": ("desc", None), "latest": ("desc", None),
    "most recent": ("desc", None),
}
_SUPERLATIVE = re.compile(r"\b(" + "|".join(sorted(_SUPERLATIVES, key=len, reverse=True))
                          + r")\b", re.I)
_COUNT = re.compile(r"\bhow many\b|\bnumber of\b|\bcount\b", re.I)
_AUX = {"is", "are", "was", "were", "do", "does", "did", "can", "could", "has", "have", "will"}
_FILLER = {"exactly", "currently", "right", "now", "today", "please", "actually", "really",
           "ever", "both", "together", "total", "altogether", "still", "yet", "one", "ones",
           "thing", "things", "kind", "sort", "mean", "sell", "offer", "cost", "get", "buy"}


@dataclass
class Analysis:
    """What the question is about, as far as the graph can tell."""

    tokens: list[Token]
    anchors: list[Link]  # individuals it names
    classes: list[Link]  # classes it names ("products")
    relations: list[RelationMention]
    comparisons: list[tuple[str, float]] = field(default_factory=list)
    count: bool = False
    order: str | None = None  # "asc" | "desc" for a superlative
    residual: list[str] = field(default_factory=list)  # content words nothing explained
    question: bool = False  # phrased as a question or request
    expects: str | None = None  # "entity" | "value": what kind of answer the wh-word wants
    yes_no: bool = False  # "Do you ship to Austria?"
    asks_unknown: bool = False  # "the <unexplained word> of …": a relation the graph lacks
    unknown_names: list[str] = field(default_factory=list)  # capitalized words nothing links

    def to_dict(self) -> dict[str, object]:
        return {"anchors": [a.to_dict() for a in self.anchors],
                "classes": [c.to_dict() for c in self.classes],
                "relations": [r.to_dict() for r in self.relations[:6]],
                "comparisons": self.comparisons, "count": self.count, "order": self.order,
                "residual": self.residual, "expects": self.expects,
                "unknown_names": self.unknown_names}


@dataclass
class Answer:
    status: str  # "answered" | "unknown" | "unrelated"
    text: str  # the answer, or what is not known
    kind: str = ""  # "path" | "describe" | "set" | "count" | "superlative"
    values: list[str] = field(default_factory=list)
    triples: list[TripleView] = field(default_factory=list)
    analysis: Analysis | None = None
    hops: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "kind": self.kind, "text": self.text,
                "values": self.values, "hops": self.hops,
                "triples": [t.citation for t in self.triples],
                "analysis": self.analysis.to_dict() if self.analysis else None}


def analyse(question: str, user: str, graph: Graph, linker: Linker,
            matcher: RelationMatcher) -> Analysis:
    tokens = tokenize(question)
    lowered = question.lower()
    vocabulary = matcher.vocabulary()
    # Relation words ("price") must not be fuzzy-matched to names ("Prince").
    relation_words = frozenset(i for i, t in enumerate(tokens) if t.stem in vocabulary)
    links = [x for x in select_links(linker.link(tokens, user, skip=relation_words))
             if x.score >= MIN_ANCHOR_SCORE or x.method == "embedding"]
    classes = class_nodes(graph, [x.node_id for x in links], user)
    anchors = [x for x in links if x.node_id not in classes]
    class_links = [x for x in links if x.node_id in classes]
    # A one-word alias that is also a relation word ("shipping" / "ship to") stays
    # available to the relation matcher as well.
    anchored = {i for x in anchors for i in range(x.start, x.end)
                if not (x.method == "alias" and i in relation_words)}
    numbers = {i for i, t in enumerate(tokens) if re.fullmatch(r"[\d.,]+", t.lower)}
    free = set(range(len(tokens))) - anchored - numbers
    extra: list[Token] = []
    order = None
    sup = _SUPERLATIVE.search(lowered)
    if sup:
        order, hint = _SUPERLATIVES[sup.group(1).lower()]
        if hint:  # "cheapest" asks about the price: let the hint word find the relation
            extra.append(Token(hint, hint, stem(hint), -1, -1))
    all_tokens = [*tokens, *extra]
    free |= set(range(len(tokens), len(all_tokens)))
    relations = matcher.match(all_tokens, free)
    explained = anchored | numbers | {i for x in class_links for i in range(x.start, x.end)}
    for m in relations:
        if m.lexical or m.score >= 0.6:
            explained |= set(m.positions)
    words = set(_comparison_words(lowered))
    residual = [t.lower for i, t in enumerate(tokens)
                if i not in explained and not t.stop and t.lower not in QUESTION_WORDS
                and t.lower not in _AUX and t.lower not in _FILLER and t.lower not in words
                and not (sup and t.lower in sup.group(1).lower().split())
                and t.lower not in ("many", "number", "count")]
    first = tokens[0].lower if tokens else ""
    residual_at = {i for i, t in enumerate(tokens) if t.lower in residual}
    asks_unknown = any(i + 1 < len(tokens) and tokens[i + 1].lower == "of" for i in residual_at)
    linked = explained | {i for x in links for i in range(x.start, x.end)}
    unknown_names = [" ".join(run) for run in _proper_names(
        [t if i not in linked and not (t.text.isupper() and len(t.text) <= 4) else None
         for i, t in enumerate(tokens)])]
    return Analysis(
        tokens, anchors, class_links, relations, _comparisons(question),
        bool(_COUNT.search(lowered)), order, residual,
        question.rstrip().endswith("?") or first in QUESTION_WORDS or first in _AUX
        or first in ("tell", "list", "name", "show", "give"),
        _expected_answer(tokens), first in _AUX, asks_unknown, unknown_names,
    )


def _expected_answer(tokens: Sequence[Token]) -> str | None:
    for i, t in enumerate(tokens):
        if t.lower in ("when",):
            return "value"
        if t.lower in ("who", "whom", "where"):
            return "entity"
        if t.lower in ("what", "which", "how"):
            nxt = tokens[i + 1].lower if i + 1 < len(tokens) else ""
            if nxt in _VALUE_WORDS:
                return "value"
            return "entity" if t.lower == "which" else None
    return None


def _comparisons(question: str) -> list[tuple[str, float]]:
    m = _BETWEEN.search(question)
    if m:
        a, b = float(m.group("num").replace(",", ".")), float(m.group("b_num").replace(",", "."))
        return [(">=", min(a, b)), ("<=", max(a, b))]
    out = []
    for pattern, op in _COMPARATORS:
        for m in re.finditer(rf"\b(?:{pattern})\s+(?:the\s+)?{_NUMBER}", question, re.I):
            out.append((op, float(m.group("num").replace(",", "."))))
        if out:
            break
    return out


def _comparison_words(lowered: str) -> list[str]:
    words = []
    for pattern, _ in _COMPARATORS:
        for phrase in pattern.split("|"):
            if re.search(rf"\b{phrase}\b", lowered):
                words += phrase.split()
    if "between" in lowered:
        words.append("between")
    return words


class Reasoner:
    """Answers questions from the graph (see the module docstring)."""

    def __init__(self, graph: Graph, linker: Linker, matcher: RelationMatcher,
                 *, max_hops: int = 3) -> None:
        self.graph = graph
        self.linker = linker
        self.matcher = matcher
        self.max_hops = max_hops

    def answer(self, question: str, *, user: str) -> Answer:
        a = analyse(question, user, self.graph, self.linker, self.matcher)
        if a.unknown_names and a.question and (a.anchors or a.classes or
                                               any(m.lexical for m in a.relations)):
            result = Answer("unknown", phrasing.unknown_entity(a.unknown_names[0]))
        elif a.comparisons or a.order or (a.count and a.classes):
            result = self._set(a, user)
        elif a.anchors:
            result = self._path(a, user)
            if result.status == "unknown" and not described(
                    self.graph, [x.node_id for x in a.anchors], user):
                result = Answer("unrelated", "")  # it names something the graph only mentions
        elif a.classes and a.question:
            result = self._set(a, user)
        else:
            result = self._unanchored(a, user)
        result.analysis = a
        return result

    # -- questions about one individual ---------------------------------------------

    def _path(self, a: Analysis, user: str) -> Answer:
        anchor_label = a.anchors[0].name
        if a.asks_unknown:
            return Answer("unknown", phrasing.unknown(a.residual, anchor_label))
        candidates = {m.relation_id: m for m in a.relations
                      if m.score >= MIN_RELATION_SCORE and (m.key != TYPE or m.lexical)}
        if a.classes:  # "the books by Ada": the relation joining Ada to books is asked for
            class_words = frozenset(i for c in a.classes for i in range(c.start, c.end))
            for rid in bridge_relations(self.graph, [x.node_id for x in a.anchors],
                                        [c.node_id for c in a.classes], user):
                if rid not in candidates or not candidates[rid].lexical:
                    # worth no more than its hop costs: it may join, never lengthen, a path
                    candidates[rid] = RelationMention(rid, str(rid), "", BRIDGE_SCORE, False,
                                                      class_words)
        if not candidates:
            if not a.residual:
                return self._describe(a, user)
            return Answer("unknown", phrasing.unknown(a.residual, anchor_label))
        repeatable = [rid for rid, m in candidates.items() if m.lexical and len(m.positions) > 1]
        starts = sorted({x.node_id for x in a.anchors})
        paths = walk(self.graph, starts, list(candidates), user, max_hops=self.max_hops,
                     repeatable=repeatable)
        wanted = {c.node_id for c in a.classes}
        typed_ends = {e for e, types in self.graph.types_of(
            {p.end for p in paths}, user).items() if types & wanted} if wanted else set()
        best = _best_signature(paths, candidates, a, typed_ends)
        if best is None:
            return Answer("unknown", phrasing.unknown(a.residual or _words(a, candidates),
                                                      anchor_label))
        signature, uncovered = best
        if uncovered:
            return Answer("unknown", phrasing.unknown(
                [*uncovered, *a.residual], anchor_label))
        chosen = [(p.end, p.hops) for p in paths if _signature(p.hops) == signature]
        if a.classes:  # "which company makes X": keep ends of that class, if any are
            types = self.graph.types_of([end for end, _ in chosen], user)
            wanted = {c.node_id for c in a.classes}
            typed = [(e, h) for e, h in chosen if types.get(e, set()) & wanted]
            chosen = typed or chosen
        if not chosen:
            return Answer("unknown", phrasing.unknown(a.residual, anchor_label))
        triple_ids = list(dict.fromkeys(h.triple_id for _, hops in chosen for h in hops))
        triples = self.graph.triples(triple_ids)
        ends = self.graph.nodes(e for e, _ in chosen)
        values = list(dict.fromkeys(ends[e].label for e, _ in chosen))
        numeric = all(ends[e].number is not None for e, _ in chosen)
        if a.count and not (numeric and len(values) == 1):  # "how many live in X": a number
            return Answer("answered", phrasing.count(len(values), values), "count",
                          [str(len(values))], triples, hops=len(signature))
        if a.yes_no and not all(ends[e].datatype == "boolean" for e, _ in chosen):
            if a.residual or not all(candidates[rid].lexical for rid, _ in signature):
                # "Can I return a candle?" is not confirmed by a fact about returns in general
                return Answer("unknown", phrasing.unknown(a.residual, anchor_label))
            return Answer("answered", phrasing.confirm(triples), "path", ["yes"], triples,
                          hops=len(signature))
        text = phrasing.path(signature, chosen, {t.id: t for t in triples}, ends)
        return Answer("answered", text, "path", values, triples, hops=len(signature))

    def _describe(self, a: Analysis, user: str) -> Answer:
        node_ids = [a.anchors[0].node_id]
        triples = self.graph.edges(node_ids, user, limit=20)
        if not triples:
            return Answer("unknown", phrasing.unknown([], a.anchors[0].name))
        return Answer("answered", phrasing.describe(a.anchors[0].name, triples, node_ids[0]),
                      "describe", [], triples)

    # -- questions about a class, with constraints -------------------------------------

    def _set(self, a: Analysis, user: str) -> Answer:
        classes = tuple(sorted({c.node_id for c in a.classes}))
        relations = {m.relation_id: m for m in a.relations if m.score >= MIN_RELATION_SCORE}
        number_relation = None
        if a.comparisons or a.order:
            numeric = numeric_relations(self.graph, classes, user)
            mentioned = [m for m in a.relations if m.relation_id in numeric
                         and m.score >= MIN_RELATION_SCORE]
            if mentioned:
                number_relation = mentioned[0].relation_id
            elif len(numeric) == 1:
                number_relation = next(iter(numeric))
            else:
                return Answer("unknown", phrasing.unknown(a.residual or ["that"], None))
        anchors = []
        for link in a.anchors:
            rel = tuple(rid for rid, m in relations.items()
                        if rid != number_relation and m.lexical)
            anchors.append(((link.node_id,), rel))
        query = SetQuery(classes, tuple(anchors), number_relation, tuple(a.comparisons),
                         a.order)
        total, items = select_set(self.graph, query, user, limit=1 if a.order else 50)
        if not total and anchors and any(r for _, r in anchors):  # relation too specific
            query = SetQuery(classes, tuple((n, ()) for n, _ in anchors), number_relation,
                             tuple(a.comparisons), a.order)
            total, items = select_set(self.graph, query, user, limit=1 if a.order else 50)
        if a.residual and not total:
            return Answer("unknown", phrasing.unknown(a.residual, None))
        nodes = self.graph.nodes(e for e, _, _ in items)
        triples = self.graph.triples(list(dict.fromkeys(i for *_, ids in items for i in ids)))
        number_label = next((t.relation for t in triples
                             if t.relation_id == number_relation), None)
        units = {t.subject.id: t.object.label for t in triples
                 if t.relation_id == number_relation}
        labels = [nodes[e].label for e, _, _ in items]
        class_name = a.classes[0].mention if a.classes else None
        if a.count:
            return Answer("answered", phrasing.count(total, labels), "count", [str(total)],
                          triples)
        if a.order:
            if not items:
                return Answer("unknown", phrasing.unknown(a.residual or ["that"], None))
            e = items[0][0]
            return Answer("answered", phrasing.superlative(nodes[e].label, number_label,
                                                           units.get(e)),
                          "superlative", [nodes[e].label], triples)
        return Answer("answered", phrasing.members(class_name, labels, total,
                                                   {nodes[e].label: units.get(e)
                                                    for e, _, _ in items}),
                      "set", labels, triples)

    # -- questions that name nothing in the graph --------------------------------------------

    def _unanchored(self, a: Analysis, user: str) -> Answer:
        """A relation only one entity has answers for it ("what are your opening hours?");
        else unknown if it asks for a relation the graph has about an unknown proper name."""
        strong = [m for m in a.relations if m.lexical]
        if strong and not a.unknown_names:
            subject = sole_subject(self.graph, strong[0].relation_id, user)
            if subject is not None:
                label = self.graph.nodes([subject])[subject].label
                a.anchors = [Link(subject, label, "", -1, -1, "relation", 1.0)]
                return self._path(a, user)
        names = _proper_names(list(a.tokens))
        if strong and names and a.question:
            return Answer("unknown", phrasing.unknown_entity(" ".join(names[0])))
        return Answer("unrelated", "")


def _signature(hops: Sequence[Hop]) -> tuple[tuple[int, bool], ...]:
    return tuple((h.relation_id, h.inverse) for h in hops)


def _best_signature(
    paths: list[Path], candidates: dict[int, RelationMention], a: Analysis,
    typed_ends: set[int],
) -> tuple[tuple[tuple[int, bool], ...], list[str]] | None:
    """The relation sequence that best explains the question, and the named relations
    it leaves out (non-empty: the graph only partly answers)."""
    class_words = {i for c in a.classes for i in range(c.start, c.end)}
    # A word naming a class ("country") may also name a relation; it need not be walked.
    strong = [m for m in candidates.values() if m.lexical and not m.positions <= class_words]
    ends: dict[tuple[tuple[int, bool], ...], bool] = {}
    of_class: set[tuple[tuple[int, bool], ...]] = set()
    for p in paths:
        ends[_signature(p.hops)] = p.literal
        if p.end in typed_ends:
            of_class.add(_signature(p.hops))
    best: tuple[float, tuple[tuple[int, bool], ...], list[str]] | None = None
    for sig, literal in ends.items():
        used: set[int] = set()
        score = 0.0
        for rid, inverse in sig:
            m = candidates[rid]
            gain = m.score - MIN_RELATION_SCORE - HOP_COST
            if m.positions & used:
                gain = -0.5  # two hops for the same words
            used |= m.positions
            score += gain - (0.05 if inverse else 0.0)
        if a.expects:
            score += ANSWER_TYPE_BONUS if (a.expects == "value") == literal else -ANSWER_TYPE_BONUS
        if sig in of_class:
            score += CLASS_BONUS
        uncovered = [m.label for m in strong if not m.positions & used]
        score -= len(uncovered)
        if best is None or score > best[0] or (score == best[0] and len(sig) < len(best[1])):
            best = (score, sig, uncovered)
    if best is None:
        return None
    return best[1], best[2]


def _words(a: Analysis, candidates: dict[int, RelationMention]) -> list[str]:
    return [m.label for m in candidates.values()][:1]


def _proper_names(tokens: Sequence[Token | None]) -> list[list[str]]:
    """Runs of capitalized words not at the start of the sentence: likely names."""
    runs: list[list[str]] = []
    current: list[str] = []
    for i, t in enumerate(tokens):
        if (t is not None and i > 0 and t.text[:1].isupper() and t.lower not in QUESTION_WORDS
                and t.lower != "i"):
            current.append(t.text)
        else:
            if current:
                runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs
