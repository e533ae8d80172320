"""Stage 1 of answering from the graph: what the words of a question are about.

:func:`analyse` links the individuals the question names ("Aurora Lamp") and the
classes ("products"), scores the graph's relations on the words left over, and reads
the cues that shape the answer: a comparison ("under 20 euros"), a count ("how
many"), a superlative ("cheapest"), the kind of answer the question word wants
("who" an entity, "when" a value), yes/no, and words nothing in the graph explains.
The result, an :class:`Analysis`, is all the later stages see of the question
(:mod:`~dialoop.knowledge.query` turns it into a typed query).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from dialoop.knowledge.graph import Graph
from dialoop.knowledge.linking import (
    TABLE_SCORE,
    Link,
    Linker,
    RelationMatcher,
    RelationMention,
    select_links,
)
from dialoop.knowledge.traversal import class_nodes
from dialoop.knowledge.words import QUESTION_WORDS, Token, root, stem, tokenize

__all__ = ["MIN_ANCHOR_SCORE", "Analysis", "analyse", "proper_names"]

# The least score of a link taken for a named individual. With the linker's defaults every
# exact (1.0), alias (0.95) and fuzzy link (0.9 × a ratio ≥ 88%: "Mara Quel", 0.85) passes;
# a linker set to a looser fuzzy cutoff adds near-misses ("Maria" for "Mara") that this
# keeps out. Embedding links (0.9 × cosine ≥ 0.8) are kept below it: the linker tries
# them only when nothing else matched, with a cutoff of its own.
MIN_ANCHOR_SCORE = 0.75
# All-capital words this short are acronyms ("CEO", "USA"), not unknown names.
_ACRONYM_LENGTH = 4
# How many relation candidates a trace shows (the rest are noise for a reader).
_TRACE_RELATIONS = 6

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
_REQUESTS = {"tell", "list", "name", "show", "give"}  # "List the products": a question too
_FILLER = {"exactly", "currently", "right", "now", "today", "please", "actually", "really",
           "ever", "both", "together", "total", "altogether", "still", "yet", "one", "ones",
           "thing", "things", "kind", "sort", "mean", "sell", "offer", "cost", "get", "buy"}
# Words that shape a question without asking for anything: never left unexplained.
_NOT_ASKED = QUESTION_WORDS | _AUX | _FILLER | {"many", "number", "count"}
_QUESTION_START = QUESTION_WORDS | _AUX | _REQUESTS


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
                "relations": [r.to_dict() for r in self.relations[:_TRACE_RELATIONS]],
                "comparisons": self.comparisons, "count": self.count, "order": self.order,
                "residual": self.residual, "expects": self.expects,
                "unknown_names": self.unknown_names}


@dataclass(frozen=True)
class _Superlative:
    order: str | None = None  # "asc" | "desc"
    hint: str | None = None  # "cheapest" asks about the price
    words: frozenset[str] = frozenset()


def analyse(question: str, user: str, graph: Graph, linker: Linker,
            matcher: RelationMatcher) -> Analysis:
    tokens = tokenize(question)
    lowered = question.lower()
    # Relation words ("price") must not be fuzzy-matched to names ("Prince").
    vocabulary = matcher.vocabulary(user)
    relation_words = frozenset(i for i, t in enumerate(tokens) if root(t.text) in vocabulary)
    anchors, class_links = _names(tokens, user, graph, linker, relation_words)
    if len(anchors) > 1:
        # A one-word name that is also a relation word ("What is the warranty of the Stratus
        # Lamp?", with an entity called Warranty) asks for that relation of the other name.
        anchors = [x for x in anchors if not (x.end - x.start == 1
                                              and x.start in relation_words)] or anchors
    anchored = _anchored(anchors, relation_words)
    numbers = {i for i, t in enumerate(tokens) if re.fullmatch(r"[\d.,]+", t.lower)}
    sup = _superlative(lowered)
    relations = _relations(matcher, tokens, set(range(len(tokens))) - anchored - numbers,
                           sup.hint, user)
    # Words that name two relations equally ("based in") mean the one that fits what the
    # question is about (a company's headquarters, not a city's country).
    relations = matcher.prefer_fitting(relations, [x.node_id for x in anchors],
                                       [c.node_id for c in class_links], user)
    # A relation whose words are all in the question explains them, and so do the shared
    # relation table's words for it ("based in": headquarteredIn); the other matches are
    # partial, or by embedding, which claims no words.
    explained = (anchored | numbers | _positions(class_links)
                 | {i for m in relations if m.lexical or m.score >= TABLE_SCORE
                    for i in m.positions})
    residual = _residual(tokens, explained, _comparison_words(lowered) | sup.words)
    first = tokens[0].lower if tokens else ""
    return Analysis(
        tokens, anchors, class_links, relations, _comparisons(question),
        bool(_COUNT.search(lowered)), sup.order, residual,
        question=question.rstrip().endswith("?") or first in _QUESTION_START,
        expects=_expected_answer(tokens), yes_no=first in _AUX,
        asks_unknown=_asks_unknown(tokens, residual),
        unknown_names=_unknown_names(tokens, explained | _positions([*anchors, *class_links])),
    )


def _names(tokens: list[Token], user: str, graph: Graph, linker: Linker,
           relation_words: frozenset[int]) -> tuple[list[Link], list[Link]]:
    """The individuals and the classes ("products": the type of something) it names."""
    links = [x for x in select_links(linker.link(tokens, user, skip=relation_words))
             if x.score >= MIN_ANCHOR_SCORE or x.method == "embedding"]
    classes = class_nodes(graph, [x.node_id for x in links], user)
    return ([x for x in links if x.node_id not in classes],
            [x for x in links if x.node_id in classes])


def _positions(links: Iterable[Link]) -> set[int]:
    return {i for x in links for i in range(x.start, x.end)}


def _anchored(anchors: Sequence[Link], relation_words: frozenset[int]) -> set[int]:
    """The token positions the named individuals take. A one-word alias that is also a
    relation word ("shipping" / "ship to") stays available to the relation matcher."""
    return {i for x in anchors for i in range(x.start, x.end)
            if not (x.method == "alias" and i in relation_words)}


def _superlative(lowered: str) -> _Superlative:
    m = _SUPERLATIVE.search(lowered)
    if not m:
        return _Superlative()
    order, hint = _SUPERLATIVES[m.group(1)]
    return _Superlative(order, hint, frozenset(m.group(1).split()))


def _relations(matcher: RelationMatcher, tokens: list[Token], free: set[int],
               hint: str | None, user: str) -> list[RelationMention]:
    """The relations the free words mention (by the graph's words and the aliases
    ``user``'s corrections taught); a superlative's hint word ("cheapest" → price) is
    matched as one more word, after the question's own."""
    if hint:
        tokens = [*tokens, Token(hint, hint, stem(hint), -1, -1)]
        free = free | {len(tokens) - 1}
    return matcher.match(tokens, free, user)


def _residual(tokens: Sequence[Token], explained: set[int], cue_words: Collection[str]
              ) -> list[str]:
    """Content words that neither the graph nor a cue of the question explains."""
    return [t.lower for i, t in enumerate(tokens)
            if i not in explained and not t.stop and t.lower not in _NOT_ASKED
            and t.lower not in cue_words]


def _asks_unknown(tokens: Sequence[Token], residual: Sequence[str]) -> bool:
    """"the <unexplained word> of …": the question asks for a relation the graph lacks."""
    return any(t.lower in residual and i + 1 < len(tokens) and tokens[i + 1].lower == "of"
               for i, t in enumerate(tokens))


def _unknown_names(tokens: Sequence[Token], linked: set[int]) -> list[str]:
    """Capitalized runs that nothing in the graph links or explains ("Zephyr Blender")."""
    candidates = [t if i not in linked and not _acronym(t) else None
                  for i, t in enumerate(tokens)]
    return [" ".join(run) for run in proper_names(candidates)]


def _acronym(t: Token) -> bool:
    return t.text.isupper() and len(t.text) <= _ACRONYM_LENGTH


def proper_names(tokens: Sequence[Token | None]) -> list[list[str]]:
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


def _expected_answer(tokens: Sequence[Token]) -> str | None:
    """"entity" or "value": what the first question word asks for (None: either)."""
    for i, t in enumerate(tokens):
        if t.lower == "when":
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
    """(operator, number) filters: "between 30 and 60" → [(">=", 30), ("<=", 60)]."""
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


def _comparison_words(lowered: str) -> set[str]:
    """The words of every comparison phrase in the question ("less", "than")."""
    words = set()
    for pattern, _ in _COMPARATORS:
        for phrase in pattern.split("|"):
            if re.search(rf"\b{phrase}\b", lowered):
                words.update(phrase.split())
    if "between" in lowered:
        words.add("between")
    return words
