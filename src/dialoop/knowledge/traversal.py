"""The reasoner's SQL: recursive walks, set queries with filters, and small facts about nodes.

Every query takes the acting user and sees global rows plus that user's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from dialoop.evidence import Scope
from dialoop.knowledge.graph import TYPE, Graph, visible
from dialoop.knowledge.schema import KgNode, KgTriple

__all__ = ["Hop", "Path", "SetQuery", "bridge_relations", "class_nodes", "described",
           "numeric_relations", "relation_end_types", "select_set", "sole_subject", "walk"]

_WALK = """
WITH RECURSIVE walk(node, depth, path, rels, lit) AS (
    SELECT n.id, 0, CAST('' AS TEXT), CAST(',' AS TEXT), 0
    FROM kg_nodes n WHERE n.id IN ({starts})
  UNION ALL
    SELECT d.id, w.depth + 1,
           w.path || CASE WHEN t.subject_id = w.node THEN '+' ELSE '-' END
                  || t.id || ':' || t.relation_id || ' ',
           w.rels || t.relation_id || ',',
           CASE WHEN d.kind = 'literal' THEN 1 ELSE 0 END
    FROM walk w
    JOIN kg_triples t ON (t.subject_id = w.node OR t.object_id = w.node)
    JOIN kg_nodes d ON d.id = CASE WHEN t.subject_id = w.node THEN t.object_id
                                   ELSE t.subject_id END
    WHERE w.depth < :max_hops AND w.lit = 0
      AND t.relation_id IN ({relations})
      AND t.scope IN (:everyone, :mine)
      AND (w.rels NOT LIKE '%,' || t.relation_id || ',%' OR t.relation_id IN ({repeatable}))
)
SELECT node, depth, path, lit FROM walk WHERE depth > 0 LIMIT :limit
"""


@dataclass(frozen=True)
class Hop:
    triple_id: int
    relation_id: int
    inverse: bool  # walked from object to subject


@dataclass(frozen=True)
class Path:
    end: int  # the node reached
    hops: tuple[Hop, ...]
    literal: bool  # the end is a value, not an entity


def walk(
    graph: Graph,
    starts: Sequence[int],
    relation_ids: Sequence[int],
    user: str,
    *,
    max_hops: int = 3,
    repeatable: Sequence[int] = (),
    limit: int = 5000,
) -> list[Path]:
    """Paths of 1..``max_hops`` visible triples from ``starts`` along ``relation_ids``.

    One recursive query (SQLite and PostgreSQL alike), walking triples in both
    directions, never leaving a literal, and using each relation once per path unless
    it is ``repeatable`` (which also bounds cycles). A path may come back to where it
    started: "where was the mayor of Lindhaven born?" can be Lindhaven.
    """
    if not starts or not relation_ids:
        return []
    # The id lists are inlined (they are integers, so this is safe) because an IN list of
    # bound parameters inside a recursive CTE is expanded differently by each driver.
    sql = _WALK.format(starts=",".join(str(int(x)) for x in starts),
                       relations=",".join(str(int(x)) for x in relation_ids),
                       repeatable=",".join(str(int(x)) for x in repeatable) or "-1")
    with graph.db.read() as s:
        everyone, mine = Scope.visible(user)
        rows = s.execute(sa.text(sql), {"max_hops": max_hops, "everyone": everyone,
                                        "mine": mine, "limit": limit}).all()
    out = []
    for node, _depth, path, lit in rows:
        hops = []
        for part in path.split():
            tid, rid = part[1:].split(":")
            hops.append(Hop(int(tid), int(rid), part[0] == "-"))
        out.append(Path(node, tuple(hops), bool(lit)))
    return out


def bridge_relations(graph: Graph, node_ids: Sequence[int], classes: Sequence[int], user: str
                     ) -> set[int]:
    """Relations that link one of ``node_ids`` directly to a member of one of ``classes``
    ("the books by Ada": whatever relation joins Ada to books)."""
    type_id = graph.relation_id(TYPE)
    if type_id is None or not node_ids or not classes:
        return set()
    t, m = aliased(KgTriple), aliased(KgTriple)
    member = sa.and_(m.relation_id == type_id, m.object_id.in_(classes), visible(m.scope, user))
    out: set[int] = set()
    with graph.db.read() as s:
        for near, far in ((t.subject_id, t.object_id), (t.object_id, t.subject_id)):
            out |= set(s.scalars(
                sa.select(t.relation_id).distinct().join(m, m.subject_id == far)
                .where(near.in_(node_ids), visible(t.scope, user), t.relation_id != type_id,
                       member)))
    return out


def class_relations(graph: Graph, classes: Sequence[int], user: str) -> set[int]:
    """Relations with a member of one of ``classes`` at either end: the hops that can
    reach the kind of thing a question asks for ("in which country …": ``locatedIn``
    from a city), though the question never names them."""
    type_id = graph.relation_id(TYPE)
    if type_id is None or not classes:
        return set()
    t, m = aliased(KgTriple), aliased(KgTriple)
    member = sa.and_(m.relation_id == type_id, m.object_id.in_(classes), visible(m.scope, user))
    out: set[int] = set()
    with graph.db.read() as s:
        for end in (t.subject_id, t.object_id):
            out |= set(s.scalars(
                sa.select(t.relation_id).distinct().join(m, m.subject_id == end)
                .where(visible(t.scope, user), t.relation_id != type_id, member)))
    return out


def relation_end_types(graph: Graph, relation_ids: Sequence[int], classes: Sequence[int],
                       user: str, *, sample: int = 2000
                       ) -> dict[int, tuple[set[int], set[int]]]:
    """Which of ``classes`` each of ``relation_ids`` was seen with, as the graph's triples
    show it: (classes of some subject: its domain, classes of some object: its range).
    ``headquarteredIn`` (a company's city) → ({Company}, {City}).

    Looked up from the classes' side, on at most ``sample`` members of each, with the
    indexes on a triple's subject and object, so it costs the same at a million triples.
    """
    type_id = graph.relation_id(TYPE)
    out: dict[int, tuple[set[int], set[int]]] = {rid: (set(), set()) for rid in relation_ids}
    if type_id is None or not relation_ids or not classes:
        return out
    with graph.db.read() as s:
        for cls in dict.fromkeys(classes):
            m, t = aliased(KgTriple), aliased(KgTriple)
            members = sa.select(m.subject_id).where(
                m.relation_id == type_id, m.object_id == cls,
                visible(m.scope, user)).limit(sample)
            for side, end in ((0, t.subject_id), (1, t.object_id)):
                for rid in s.scalars(sa.select(t.relation_id).distinct().where(
                        end.in_(members), t.relation_id.in_(list(relation_ids)),
                        visible(t.scope, user))):
                    out[rid][side].add(cls)
    return out


def class_nodes(graph: Graph, node_ids: Iterable[int], user: str) -> set[int]:
    """Which of ``node_ids`` are the class (type) of something visible."""
    type_id = graph.relation_id(TYPE)
    node_ids = list(set(node_ids))
    if type_id is None or not node_ids:
        return set()
    with graph.db.read() as s:
        return set(s.scalars(sa.select(KgTriple.object_id).distinct().where(
            KgTriple.relation_id == type_id, KgTriple.object_id.in_(node_ids),
            visible(KgTriple.scope, user))))


@dataclass(frozen=True)
class SetQuery:
    """Entities x such that: x has one of ``classes`` as type (if any), x is linked to each
    anchor (by one of its relations, if given), and x's ``number_relation`` value
    satisfies every ``(op, value)`` comparison. ``order`` sorts by that value."""

    classes: tuple[int, ...] = ()
    anchors: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()  # (node ids, relation ids)
    number_relation: int | None = None
    comparisons: tuple[tuple[str, float], ...] = ()
    order: str | None = None  # "asc" | "desc"


_OPS = {"<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__", "=": "__eq__"}


def select_set(graph: Graph, q: SetQuery, user: str, *, limit: int = 50
               ) -> tuple[int, list[tuple[int, float | None, list[int]]]]:
    """(how many match, the first ``limit`` as (entity id, its number, cited triple ids))."""
    type_id = graph.relation_id(TYPE)
    if q.classes and type_id is None:
        return 0, []
    cited: list[Any] = []  # triple id columns, cited by the answer
    if q.classes:
        m = aliased(KgTriple)
        x = m.subject_id
        stmt = sa.select(x).where(m.relation_id == type_id, m.object_id.in_(q.classes),
                                  visible(m.scope, user))
        cited.append(m.id)
    elif q.number_relation is not None:
        m = aliased(KgTriple)
        x = m.subject_id
        stmt = sa.select(x).where(m.relation_id == q.number_relation, visible(m.scope, user))
    else:
        return 0, []
    number: Any = sa.null()
    if q.number_relation is not None:
        n, lit = aliased(KgTriple), aliased(KgNode)
        stmt = stmt.join(n, n.subject_id == x).join(lit, lit.id == n.object_id).where(
            n.relation_id == q.number_relation, visible(n.scope, user), lit.number.is_not(None))
        for op, value in q.comparisons:
            stmt = stmt.where(getattr(lit.number, _OPS[op])(value))
        number = lit.number
        cited.append(n.id)
    for nodes, relations in q.anchors:
        a = aliased(KgTriple)
        link = sa.or_(sa.and_(a.subject_id == x, a.object_id.in_(nodes)),
                      sa.and_(a.object_id == x, a.subject_id.in_(nodes)))
        stmt = stmt.join(a, link).where(visible(a.scope, user))
        if relations:
            stmt = stmt.where(a.relation_id.in_(relations))
        cited.append(a.id)
    stmt = stmt.with_only_columns(x, number, *cited)
    if q.order and q.number_relation is not None:
        stmt = stmt.order_by(number.asc() if q.order == "asc" else number.desc(), x)
    else:
        stmt = stmt.order_by(x)
    with graph.db.read() as s:
        rows = s.execute(stmt).all()
    found: dict[int, tuple[int, float | None, list[int]]] = {}
    for entity, num, *ids in rows:
        if entity in found:
            found[entity][2].extend(i for i in ids if i not in found[entity][2])
        else:
            found[entity] = (entity, num, list(ids))
    items = list(found.values())
    return len(items), items[:limit]


def numeric_relations(graph: Graph, classes: Sequence[int], user: str) -> set[int]:
    """Relations with a number or date value on members of ``classes`` (or on anything)."""
    n, lit = aliased(KgTriple), aliased(KgNode)
    stmt = sa.select(n.relation_id).distinct().join(lit, lit.id == n.object_id).where(
        lit.number.is_not(None), visible(n.scope, user))
    type_id = graph.relation_id(TYPE)
    if classes and type_id is not None:
        m = aliased(KgTriple)
        stmt = stmt.join(m, m.subject_id == n.subject_id).where(
            m.relation_id == type_id, m.object_id.in_(classes), visible(m.scope, user))
    with graph.db.read() as s:
        return set(s.scalars(stmt))


def described(graph: Graph, node_ids: Sequence[int], user: str) -> bool:
    """Whether the graph states anything about these nodes beyond their type: if it
    does not ("France" only as a country the store ships to), a question about them
    is not a question about the knowledge. Facts pointing at a node can describe it
    too (see below)."""
    type_id = graph.relation_id(TYPE)
    with graph.db.read() as s:
        ids = list(node_ids)
        if s.scalar(sa.select(KgTriple.id).where(
                KgTriple.subject_id.in_(ids), KgTriple.relation_id != (type_id or -1),
                visible(KgTriple.scope, user)).limit(1)) is not None:
            return True
        # Facts pointing at a node describe it when it is untyped (an actor in a cast
        # list) or when they do so by two relations or more (a country that cities are
        # located in and have as capital); a typed node one relation points at is a
        # reference ("France", a country the store ships to).
        typed = set(s.scalars(sa.select(KgTriple.subject_id).where(
            KgTriple.subject_id.in_(ids), KgTriple.relation_id == (type_id or -1),
            visible(KgTriple.scope, user))))
        pointing = s.execute(sa.select(KgTriple.object_id, KgTriple.relation_id).distinct().where(
            KgTriple.object_id.in_(ids), KgTriple.relation_id != (type_id or -1),
            visible(KgTriple.scope, user)).limit(1000)).all()
        by_node: dict[int, set[int]] = {}
        for node, relation in pointing:
            by_node.setdefault(node, set()).add(relation)
        return any(node not in typed or len(rels) > 1 for node, rels in by_node.items())


def sole_subject(graph: Graph, relation_id: int, user: str) -> int | None:
    """The one entity that has ``relation_id`` facts, if exactly one does ("the return
    window" when only the return policy has one)."""
    with graph.db.read() as s:
        subjects = s.scalars(sa.select(KgTriple.subject_id).distinct().where(
            KgTriple.relation_id == relation_id, visible(KgTriple.scope, user)).limit(2)).all()
    return subjects[0] if len(subjects) == 1 else None
