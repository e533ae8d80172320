"""Stage 2 of answering from the graph: the typed query an :class:`Analysis` asks.

:func:`plan` reads no graph: it decides from the analysis alone what kind of question
this is, and the query says everything the execution stage
(:mod:`~dialoop.knowledge.execution`) needs:

- :class:`PathQuery`: about one named individual: walk 1–3 hops from it along the
  relations the question mentions ("Where was the author of The Salt Orchard born?").
- :class:`Describe`: names an individual and asks nothing more ("Tell me about X").
- :class:`SetQuery`: about a class or with a constraint: members ∩ links to the named
  individuals ∩ numeric filters, listed, counted or the top one ("the cheapest product").
- :class:`SoleSubject`: names nothing, but mentions a relation only one entity may have
  ("What are your opening hours?"): ask that entity, else ``otherwise``.
- :class:`Decline`, :class:`UnknownEntity`: about the knowledge, but not answerable:
  the caller says "I don't know" rather than guess.
- :class:`Unrelated`: not about the knowledge; the model answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialoop.knowledge.analysis import Analysis, proper_names
from dialoop.knowledge.graph import TYPE
from dialoop.knowledge.linking import RelationMention

__all__ = ["MIN_RELATION_SCORE", "Decline", "Describe", "PathQuery", "Query", "SetQuery",
           "SoleSubject", "UnknownEntity", "Unrelated", "plan"]

# Below this a relation is not a candidate hop. The matcher scores a relation whose every
# word is in the question 1.0, one matched by meaning its cosine (reported from 0.45), and
# a partial word match 0.6 × the fraction of its words found (half of "publication year":
# 0.3; at most 0.55 for phrases under 12 words). So a hop is either named outright or a
# close paraphrase ("whose wife" ~ spouse), never a guess from one shared word.
MIN_RELATION_SCORE = 0.55


@dataclass(frozen=True)
class PathQuery:
    """Walk from ``anchors`` along ``relations``; the relation sequence that best explains
    the question wins (see :func:`dialoop.knowledge.execution.best_signature`)."""

    anchors: tuple[int, ...]  # the individuals the question names, in its order
    about: str  # the first one's name as the question says it, for a decline
    relations: tuple[RelationMention, ...]  # candidate hops, best first
    classes: tuple[int, ...] = ()  # "which company …": ends of these classes are wanted
    class_words: frozenset[int] = frozenset()  # the token positions naming those classes
    expects: str | None = None  # "entity" | "value"
    count: bool = False  # "how many books did Ada write?"
    yes_no: bool = False  # "Do you ship to Austria?": confirm, or decline
    residual: tuple[str, ...] = ()  # words nothing explained
    asked_classes: tuple[int, ...] = ()  # "which country …", "in what city …": the answer's
    partners_of: tuple[int, ...] = ()  # "co-starred with X", "X's co-stars": X


@dataclass(frozen=True)
class Describe:
    """What the graph holds about ``anchors[0]``."""

    anchors: tuple[int, ...]
    about: str


@dataclass(frozen=True)
class SetQuery:
    """Entities x (members of ``classes``, if any) linked to each of ``anchors``, whose
    number passes every comparison; listed, counted, or the first by ``order``.

    The number is the first of ``relations`` with numeric values on the members (or the
    only numeric relation they have); the lexical ``relations`` join x to the anchors."""

    classes: tuple[int, ...] = ()
    class_name: str | None = None  # the class as the question says it
    anchors: tuple[int, ...] = ()  # one constraint per named individual
    relations: tuple[RelationMention, ...] = ()
    comparisons: tuple[tuple[str, float], ...] = ()  # (operator, value)
    order: str | None = None  # "asc" | "desc": a superlative
    count: bool = False
    residual: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """The kind of answer it gets: "count", "superlative" or "set"."""
        return "count" if self.count else "superlative" if self.order else "set"


@dataclass(frozen=True)
class Decline:
    """The graph has no ``words`` for ``about``."""

    words: tuple[str, ...] = ()
    about: str | None = None
    anchors: tuple[int, ...] = ()  # the individuals the question names, if any


@dataclass(frozen=True)
class UnknownEntity:
    """It asks about ``name``, which the graph does not know ("the Zephyr Blender")."""

    name: str


@dataclass(frozen=True)
class Unrelated:
    """Not a question about the knowledge."""


@dataclass(frozen=True)
class SoleSubject:
    """Ask the one entity that has ``relation`` facts, if only one has; else ``otherwise``."""

    relation: int
    otherwise: UnknownEntity | Unrelated


Query = PathQuery | Describe | SetQuery | Decline | UnknownEntity | Unrelated | SoleSubject


def plan(a: Analysis) -> Query:
    """The query ``a`` asks; the order of the tests is the precedence of the kinds."""
    if a.unknown_names and a.question and (a.anchors or a.classes
                                           or any(m.lexical for m in a.relations)):
        # "the price of the Zephyr Blender": a name the graph lacks, in a question for it
        return UnknownEntity(a.unknown_names[0])
    if a.comparisons or a.order or (a.count and a.classes):  # "under 20 euros", "cheapest"
        return _set(a)
    if a.anchors:  # about an individual
        return _path(a)
    if a.classes and a.question:  # "which products do you sell?"
        return _set(a)
    return _unanchored(a)


def _path(a: Analysis) -> PathQuery | Describe | Decline:
    anchors = tuple(dict.fromkeys(x.node_id for x in a.anchors))
    about, residual = a.anchors[0].name, tuple(a.residual)
    if a.asks_unknown:
        return Decline(residual, about, anchors)
    # "type" is a hop only when named ("what type of …"): by meaning it fits any question
    relations = tuple(m for m in a.relations
                      if m.score >= MIN_RELATION_SCORE and (m.key != TYPE or m.lexical))
    # With a class, a relation may still join it to the individual ("the books by Ada").
    if not relations and not a.classes:
        return Describe(anchors, about) if not residual else Decline(residual, about, anchors)
    return PathQuery(anchors, about, relations, _classes(a),
                     frozenset(i for c in a.classes for i in range(c.start, c.end)),
                     a.expects, a.count, a.yes_no, residual, _asked_classes(a),
                     _partners_of(a, relations))


def _asked_classes(a: Analysis) -> tuple[int, ...]:
    """The classes the question asks for ("which country", "what city") or places a hop
    in ("the country where …", "the country X is based in": a clause about a named
    individual right after the class), as opposed to those it passes through ("the
    company that makes X")."""
    t = a.tokens
    named = {x.start for x in a.anchors}
    return tuple(sorted({c.node_id for c in a.classes
                         if (c.start > 0 and t[c.start - 1].lower in ("which", "what"))
                         or (c.end < len(t) and t[c.end].lower == "where")
                         or (c.end + 1 < len(t) and t[c.end].lower == "in"
                             and t[c.end + 1].lower == "which")
                         or c.end in named}))


def _partners_of(a: Analysis, relations: tuple[RelationMention, ...]) -> tuple[int, ...]:
    """The individuals a "co-" word asks the partners of: the one named right after "co-X
    with" ("co-starred with X") or right before it ("X's co-stars")."""
    words = {i for m in relations if m.joint for i in m.positions}
    return tuple(dict.fromkeys(
        x.node_id for x in a.anchors
        if any(x.start == i + 2 or x.end == i for i in words)))


def _set(a: Analysis) -> SetQuery:
    return SetQuery(
        classes=_classes(a), class_name=a.classes[0].mention if a.classes else None,
        anchors=tuple(x.node_id for x in a.anchors),
        relations=tuple(m for m in a.relations if m.score >= MIN_RELATION_SCORE),
        comparisons=tuple(a.comparisons), order=a.order, count=a.count,
        residual=tuple(a.residual))


def _classes(a: Analysis) -> tuple[int, ...]:
    return tuple(sorted({c.node_id for c in a.classes}))


def _unanchored(a: Analysis) -> SoleSubject | UnknownEntity | Unrelated:
    """A relation named outright may belong to one entity only ("the return window" when
    only the return policy has one); a relation asked about an unknown proper name is
    not known; anything else is not about the knowledge."""
    strong = [m for m in a.relations if m.lexical]
    names = proper_names(a.tokens)
    otherwise: UnknownEntity | Unrelated = (
        UnknownEntity(" ".join(names[0])) if strong and names and a.question else Unrelated())
    if strong and not a.unknown_names:
        return SoleSubject(strong[0].relation_id, otherwise)
    return otherwise
