"""Stage 3 of answering from the graph: run a typed query, and word what it found.

The SQL is in :mod:`~dialoop.knowledge.traversal` and the sentences in
:mod:`~dialoop.knowledge.phrasing`; this module decides what to ask the graph for a
:mod:`~dialoop.knowledge.query` and which of the finds answer it. For a path query
that is :func:`best_signature`: of every relation sequence the walk found, the one
that best explains the question's words.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

from dialoop.knowledge import phrasing, traversal
from dialoop.knowledge.analysis import Analysis
from dialoop.knowledge.graph import Graph, TripleView
from dialoop.knowledge.linking import RelationMention
from dialoop.knowledge.query import (
    MIN_RELATION_SCORE,
    Decline,
    Describe,
    PathQuery,
    Query,
    SetQuery,
    UnknownEntity,
    Unrelated,
)
from dialoop.knowledge.traversal import Hop, Path

__all__ = ["Answer", "Signature", "best_signature", "execute", "signature"]

# A relation the question does not name but that joins a named individual to a named
# class ("the books by Ada": whatever links Ada to books) gains exactly what its hop costs
# (see HOP_COST): it may complete a path, but never lengthens one for its own sake.
BRIDGE_SCORE = MIN_RELATION_SCORE + 0.1
# Each hop must earn its place: a named relation (1.0) gains 0.35 for its hop, a paraphrase
# at cosine c gains c − 0.65 (a loss below 0.65); of two explanations, prefer the shorter.
HOP_COST = 0.1
# Walking a relation backwards ("what does X make" from "Y — maker — X") is a little
# less likely what was meant than forwards, which decides ties between the two.
INVERSE_COST = 0.05
# Two relations matched by the same words ("born": birthplace, birth year) are one thing
# asked, not two hops: a hop on words an earlier hop used loses more than any hop gains.
REUSED_WORDS_GAIN = -0.5
# "which company …": a path ending at a member of the named class; worth two hops, so that
# "in which country was X born" walks on from the city to its country.
CLASS_BONUS = 0.2
# "who"/"where" want an entity, "when"/"how much" a value: a path ending in the right kind
# gains it, the wrong kind loses it. The swing (0.6) outweighs a named hop (0.35): "when
# was X founded" takes the founding year, not the founder ("founded" names both).
ANSWER_TYPE_BONUS = 0.3
# A relation the question names outright (not only as a class word) that the path leaves
# out. More than the bonuses above together, so a path using every named relation wins
# where one exists; where none does, the graph only partly answers and the reply declines.
UNCOVERED_COST = 1.0
# Facts shown for "Tell me about X" (the oldest first).
DESCRIBE_LIMIT = 20
# Members listed by a set answer (the rest are counted: "and 12 more").
SET_LIMIT = 50

Signature = tuple[tuple[int, bool], ...]  # (relation id, walked backwards) per hop


@dataclass
class Answer:
    """What the graph says to a question: values, the triples they rest on, a sentence."""

    status: str  # "answered" | "unknown" | "unrelated"
    text: str  # the answer, or what is not known
    kind: str = ""  # "path" | "describe" | "set" | "count" | "superlative"
    values: list[str] = field(default_factory=list)
    triples: list[TripleView] = field(default_factory=list)
    analysis: Analysis | None = None
    hops: int = 0
    typed: bool = True  # it reaches the kind of thing the question asks for, if it asks

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "kind": self.kind, "text": self.text,
                "values": self.values, "hops": self.hops,
                "triples": [t.citation for t in self.triples],
                "analysis": self.analysis.to_dict() if self.analysis else None}


def execute(graph: Graph, query: Query, user: str, *, max_hops: int = 3) -> Answer:
    """The answer to ``query`` from what ``user`` may see."""
    match query:
        case PathQuery():
            return _path(graph, query, user, max_hops)
        case SetQuery():
            return _set(graph, query, user)
        case Describe():
            return _describe(graph, query, user)
        case Decline():
            return _decline(query.words, query.about, graph, query.anchors, user)
        case UnknownEntity():
            return Answer("unknown", phrasing.unknown_entity(query.name))
        case Unrelated():
            return Answer("unrelated", "")
    raise AssertionError(f"{query!r} does not run: a SoleSubject is resolved to its subject "
                         "first (see Reasoner.answer)")


def _decline(words: Sequence[str], about: str | None, graph: Graph | None = None,
             anchors: Sequence[int] = (), user: str = "") -> Answer:
    """"I don't know", and (given the graph and the anchors) the relations it does hold
    about the first anchor, so the user can ask again and nothing is invented."""
    held: list[str] = []
    if graph is not None and anchors:
        held = phrasing.holdings(graph.edges([anchors[0]], user, limit=DESCRIBE_LIMIT),
                                 anchors[0])
    return Answer("unknown", phrasing.unknown(list(words), about, held))


def _describe(graph: Graph, q: Describe, user: str) -> Answer:
    node_id = q.anchors[0]
    triples = graph.edges([node_id], user, limit=DESCRIBE_LIMIT)
    if not triples:
        return _decline([], q.about)
    return Answer("answered", phrasing.describe(q.about, triples, node_id), "describe", [],
                  triples)


# -- path queries ---------------------------------------------------------------------


def _path(graph: Graph, q: PathQuery, user: str, max_hops: int) -> Answer:
    candidates = _candidates(graph, q, user)
    if not candidates:
        return _describe(graph, Describe(q.anchors, q.about), user) if not q.residual \
            else _decline(q.residual, q.about, graph, q.anchors, user)
    answer = _walk(graph, q, user, max_hops, candidates)
    typed = _typed_hops(graph, q, user, candidates)
    if typed and (answer.status != "answered" or not answer.typed):
        # The named relations alone do not reach what was asked for ("in which country
        # is X headquartered": a city): let one unnamed hop into that class complete it.
        retry = _walk(graph, q, user, max_hops, {**candidates, **typed})
        if retry.status == "answered" and retry.typed:
            return retry
    return answer


def _walk(graph: Graph, q: PathQuery, user: str, max_hops: int,
          candidates: dict[int, RelationMention]) -> Answer:
    joint = {rid for rid, m in candidates.items() if m.joint}
    repeatable = [rid for rid, m in candidates.items()
                  if (m.lexical and len(m.positions) > 1) or rid in joint]
    paths = traversal.walk(graph, sorted(q.anchors), list(candidates), user,
                           max_hops=max_hops, repeatable=repeatable)
    if joint:  # "who co-starred with X": someone else than X
        paths = _partners(graph, q, paths)
    typed_ends = _ends_of_class(graph, paths, q.classes, user)
    best = best_signature(paths, candidates, expects=q.expects, class_words=q.class_words,
                          typed_ends=typed_ends, joint=joint)
    if best is None:
        return _decline(q.residual or [m.label for m in candidates.values()][:1], q.about,
                        graph, q.anchors, user)
    sig, uncovered = best
    if uncovered:
        return _decline([*uncovered, *q.residual], q.about, graph, q.anchors, user)
    chosen = [(p.end, p.hops) for p in paths if signature(p.hops) == sig]
    if q.expects == "entity" and all(p.literal for p in paths if signature(p.hops) == sig):
        # "Who founded X?" is not answered by X's founding year: the graph has no who
        return _decline([*q.residual] or [candidates[rid].label for rid, _ in sig][:1],
                        q.about, graph, q.anchors, user)
    if q.classes:  # "which company makes X": keep the ends of that class, if any are
        chosen = [(e, h) for e, h in chosen if e in typed_ends] or chosen
    answer = _path_answer(graph, q, sig, chosen, candidates)
    if q.asked_classes:  # does the path pass through (or end at) what was asked for?
        nodes = {n for t in answer.triples for n in (t.subject.id, t.object.id)}
        wanted = set(q.asked_classes)
        answer.typed = any(of & wanted for of in graph.types_of(nodes, user).values())
    return answer


def _partners(graph: Graph, q: PathQuery, paths: Sequence[Path]) -> list[Path]:
    """For a "co-" question, the paths that end at someone else than the named ones, each
    fact walked once (not there and back along the same one); with another named
    ("co-starred with X in F"), those from X (the one the question asks the partners of)
    through the other, where any are (X → F → the others of F)."""
    paths = [p for p in paths if p.end not in q.anchors
             and len({h.triple_id for h in p.hops}) == len(p.hops)]
    if len(q.anchors) < 2:
        return paths
    firsts = {t.id: t for t in graph.triples([p.hops[0].triple_id for p in paths])}

    def ends(p: Path) -> tuple[int | None, int | None]:  # (where it starts, its next node)
        t = firsts.get(p.hops[0].triple_id)
        if t is None:
            return None, None
        start, nxt = (t.object.id, t.subject.id) if p.hops[0].inverse \
            else (t.subject.id, t.object.id)
        return start, nxt

    kept = [p for p in paths if not q.partners_of or ends(p)[0] in q.partners_of] or paths
    through = [p for p in kept if len(p.hops) > 1 and ends(p)[1] in q.anchors]
    return through or kept


def _candidates(graph: Graph, q: PathQuery, user: str) -> dict[int, RelationMention]:
    """The relations a hop may follow: those mentioned, and with a named class, those
    that join the individual to its members ("the books by Ada")."""
    candidates = {m.relation_id: m for m in q.relations}
    if q.classes:
        for rid in traversal.bridge_relations(graph, q.anchors, q.classes, user):
            # A relation the question's own words name ("based in") keeps those words: as
            # a bridge it would claim the class words instead, and lose what it explains.
            m = candidates.get(rid)
            if m is None or not (m.lexical or (m.positions and m.score >= BRIDGE_SCORE)):
                candidates[rid] = RelationMention(rid, str(rid), "", BRIDGE_SCORE, False,
                                                  q.class_words)
    return candidates


def _typed_hops(graph: Graph, q: PathQuery, user: str,
                candidates: dict[int, RelationMention]) -> dict[int, RelationMention]:
    """Relations that reach a member of a class the question asks for ("which country",
    "the country where"), as unnamed hops; none when the question names no relation."""
    if not q.relations or not q.asked_classes:
        return {}
    # The hop may be next to the answer ("which country": city → country) or next to the
    # named individual ("which companies … in Norland": country ← city).
    # A relation named only by words that name another as well (the shared table's "based
    # in": headquarteredIn and locatedIn alike) may be that hop too: as a named one it
    # would reuse the other's words.
    own = {c for of in graph.types_of(q.anchors, user).values() for c in of}
    classes = sorted(set(q.asked_classes) | own)
    return {rid: RelationMention(rid, str(rid), "", BRIDGE_SCORE, False, q.class_words)
            for rid in traversal.class_relations(graph, classes, user)
            if rid not in candidates or _shares_words(candidates[rid], candidates)}


def _shares_words(m: RelationMention, candidates: dict[int, RelationMention]) -> bool:
    """Whether ``m`` is named only by words that name another candidate just as well."""
    return not m.lexical and bool(m.positions) and any(
        o.relation_id != m.relation_id and o.positions == m.positions and o.score == m.score
        for o in candidates.values())


def _ends_of_class(graph: Graph, paths: Sequence[Path], classes: Sequence[int], user: str
                   ) -> set[int]:
    if not classes:
        return set()
    wanted = set(classes)
    types = graph.types_of({p.end for p in paths}, user)
    return {end for end, of in types.items() if of & wanted}


def _path_answer(graph: Graph, q: PathQuery, sig: Signature,
                 chosen: list[tuple[int, tuple[Hop, ...]]],
                 candidates: dict[int, RelationMention]) -> Answer:
    triples = graph.triples(list(dict.fromkeys(h.triple_id for _, hops in chosen for h in hops)))
    ends = graph.nodes(e for e, _ in chosen)
    values = list(dict.fromkeys(ends[e].label for e, _ in chosen))
    numeric = all(ends[e].number is not None for e, _ in chosen)
    if q.count and not (numeric and len(values) == 1):  # "how many live in X": a number
        return Answer("answered", phrasing.count(len(values), values), "count",
                      [str(len(values))], triples, hops=len(sig))
    if q.yes_no and not all(ends[e].datatype == "boolean" for e, _ in chosen):
        if q.residual or not all(candidates[rid].lexical for rid, _ in sig):
            # "Can I return a candle?" is not confirmed by a fact about returns in general
            return _decline(q.residual, q.about)
        return Answer("answered", phrasing.confirm(triples), "path", ["yes"], triples,
                      hops=len(sig))
    text = phrasing.path(sig, chosen, {t.id: t for t in triples}, ends)
    return Answer("answered", text, "path", values, triples, hops=len(sig))


def signature(hops: Sequence[Hop]) -> Signature:
    return tuple((h.relation_id, h.inverse) for h in hops)


def best_signature(
    paths: Sequence[Path], candidates: dict[int, RelationMention], *,
    expects: str | None = None, class_words: frozenset[int] = frozenset(),
    typed_ends: Collection[int] = frozenset(), joint: Collection[int] = frozenset(),
) -> tuple[Signature, list[str]] | None:
    """The relation sequence that best explains the question, and the relations it
    names that the sequence leaves out (non-empty: the graph only partly answers).
    ``joint``: relations named with "co-" ("co-starred with X"), asked as a hop there and
    back (X → a film → its other actors); a sequence without that pair leaves them out.

    Ties go to the shorter sequence, then to the first found."""
    # A word naming a class ("country") may also name a relation; it need not be walked.
    strong = [m for m in candidates.values() if m.lexical and not m.positions <= class_words]
    literal: dict[Signature, bool] = {}  # each sequence: does it end in a value?
    of_class: set[Signature] = set()
    for p in paths:
        literal[signature(p.hops)] = p.literal
        if p.end in typed_ends:
            of_class.add(signature(p.hops))
    best: tuple[float, Signature, list[str]] | None = None
    for sig, ends_in_value in literal.items():
        score, uncovered = _score(sig, candidates, strong, joint)
        if expects:
            score += ANSWER_TYPE_BONUS if (expects == "value") == ends_in_value \
                else -ANSWER_TYPE_BONUS
        if sig in of_class:
            score += CLASS_BONUS
        score -= UNCOVERED_COST * len(uncovered)
        if best is None or score > best[0] or (score == best[0] and len(sig) < len(best[1])):
            best = (score, sig, uncovered)
    return None if best is None else (best[1], best[2])


def _score(sig: Signature, candidates: dict[int, RelationMention],
           strong: Sequence[RelationMention], joint: Collection[int] = frozenset()
           ) -> tuple[float, list[str]]:
    """What the hops of ``sig`` gain, and the ``strong`` relations they leave out (and
    the ``joint`` ones it does not walk there and back)."""
    used: set[int] = set()
    paired: set[int] = set()
    score = 0.0
    previous: tuple[int, bool] | None = None
    for rid, inverse in sig:
        m = candidates[rid]
        if rid in joint and previous == (rid, not inverse):
            gain = 0.0  # the way back is the same words' "co-": no gain, no loss
            paired.add(rid)
        elif m.positions & used:
            gain = REUSED_WORDS_GAIN
        else:
            gain = m.score - MIN_RELATION_SCORE - HOP_COST
        used |= m.positions
        score += gain - (INVERSE_COST if inverse else 0.0)
        previous = (rid, inverse)
    uncovered = [m.label for m in strong if not m.positions & used]
    uncovered += [candidates[rid].label for rid in joint if rid not in paired
                  and candidates[rid].label not in uncovered]
    return score, uncovered


# -- set queries ----------------------------------------------------------------------


def _set(graph: Graph, q: SetQuery, user: str) -> Answer:
    number = _number_relation(graph, q, user)
    if (q.comparisons or q.order) and number is None:
        return _decline(q.residual or ["that"], None)
    joins = tuple(m.relation_id for m in q.relations if m.lexical and m.relation_id != number)
    select = traversal.SetQuery(q.classes, tuple(((n,), joins) for n in q.anchors), number,
                                q.comparisons, q.order)
    limit = 1 if q.order else SET_LIMIT
    total, items = traversal.select_set(graph, select, user, limit=limit)
    if not total and q.anchors and joins:  # the relation was too specific: any link will do
        select = replace(select, anchors=tuple(((n,), ()) for n in q.anchors))
        total, items = traversal.select_set(graph, select, user, limit=limit)
    if q.residual and not total:
        return _decline(q.residual, None)
    return _set_answer(graph, q, number, total, items)


def _number_relation(graph: Graph, q: SetQuery, user: str) -> int | None:
    """The relation whose values a comparison or a superlative is about: the first
    mentioned one with numbers on the members, else their only numeric relation."""
    if not (q.comparisons or q.order):
        return None
    numeric = traversal.numeric_relations(graph, q.classes, user)
    mentioned = [m.relation_id for m in q.relations if m.relation_id in numeric]
    if mentioned:
        return mentioned[0]
    return next(iter(numeric)) if len(numeric) == 1 else None


def _set_answer(graph: Graph, q: SetQuery, number: int | None, total: int,
                items: list[tuple[int, float | None, list[int]]]) -> Answer:
    nodes = graph.nodes(e for e, _, _ in items)
    triples = graph.triples(list(dict.fromkeys(i for *_, ids in items for i in ids)))
    labels = [nodes[e].label for e, _, _ in items]
    numbers = [t for t in triples if t.relation_id == number]
    values = {t.subject.id: t.object.label for t in numbers}  # with their units
    if q.kind == "count":
        return Answer("answered", phrasing.count(total, labels), "count", [str(total)], triples)
    if q.kind == "superlative":
        if not items:
            return _decline(q.residual or ["that"], None)
        top = nodes[items[0][0]]
        text = phrasing.superlative(top.label, numbers[0].relation if numbers else None,
                                    values.get(top.id))
        return Answer("answered", text, "superlative", [top.label], triples)
    text = phrasing.members(q.class_name, labels, total,
                            {nodes[e].label: values.get(e) for e, _, _ in items})
    return Answer("answered", text, "set", labels, triples)
