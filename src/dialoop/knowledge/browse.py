"""Reading the knowledge as a person browses it: find an entity, show its facts, count.

Shared by ``dialoop kg show|stats`` and the server's ``/api/knowledge`` endpoints, so
that both show exactly the same view (and the same visibility rules: the global
knowledge plus the asking user's own).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from dialoop.errors import NotFoundError
from dialoop.evidence import Scope
from dialoop.knowledge.graph import TripleView, visible
from dialoop.knowledge.lookup import KnowledgeBase
from dialoop.knowledge.schema import KgChunk, KgDocument, KgName, KgNode, KgRelation, KgTriple
from dialoop.knowledge.words import norm

__all__ = ["entity_view", "search_entities", "stats", "triple_dict"]


def find_entity(kb: KnowledgeBase, entity: str, user: str) -> tuple[list[int], list[list[str]]]:
    """Node ids named ``entity`` (a label, alias or key) and their (name, kind) pairs."""
    with kb.db_read() as s:
        ids = list(s.scalars(sa.select(KgName.node_id).distinct().where(
            KgName.norm == norm(entity), visible(KgName.scope, user))))
        if not ids:
            ids = list(s.scalars(sa.select(KgNode.id).join(KgName, KgName.node_id == KgNode.id)
                                 .where(KgNode.key == entity, visible(KgName.scope, user))
                                 .distinct()))
        if not ids:
            raise NotFoundError(f"No entity {entity!r} in the knowledge graph: "
                                "`dialoop kg stats` shows what is there.")
        names = s.execute(sa.select(KgName.name, KgName.kind).where(
            KgName.node_id.in_(ids), visible(KgName.scope, user)).distinct()).all()
    return ids, [list(n) for n in names]


def entity_view(kb: KnowledgeBase, entity: str, user: str, *, limit: int = 500
                ) -> tuple[list[list[str]], list[TripleView]]:
    """An entity's names and the facts about it that ``user`` may see."""
    ids, names = find_entity(kb, entity, user)
    return names, kb.graph.edges(ids, user, limit=limit)


def triple_dict(t: TripleView) -> dict[str, Any]:
    return {"id": t.citation, "subject": t.subject.label, "relation": t.relation,
            "object": t.object.label, "scope": t.scope,
            "source": t.source, "added_by": t.added_by, "lesson_id": t.lesson_id,
            "created_at": t.created_at.isoformat()}


def search_entities(kb: KnowledgeBase, text: str, user: str, *, limit: int = 20
                    ) -> list[dict[str, str | None]]:
    """Entities with a name containing ``text`` (case-insensitive), labels first."""
    pattern = f"%{text.strip().lower()}%"
    with kb.db_read() as s:
        rows = s.execute(
            sa.select(KgName.node_id, KgName.name, KgName.kind)
            .join(KgNode, KgNode.id == KgName.node_id)
            .where(KgNode.kind == "entity", visible(KgName.scope, user),
                   sa.func.lower(KgName.name).like(pattern))
            .order_by(KgName.kind.desc(), sa.func.length(KgName.name), KgName.name)
            .limit(limit * 4)).all()
    seen: dict[int, str] = {}
    for node_id, name, _ in rows:  # one row per entity: its label if that matched
        seen.setdefault(node_id, name)
    ids = list(seen)[:limit]
    types = kb.graph.types_of(ids, user)
    labels = kb.graph.nodes({t for ts in types.values() for t in ts})
    return [{"name": seen[i],
             "type": next((labels[t].label for t in sorted(types.get(i, ())) if t in labels),
                          None)}
            for i in ids]


def stats(kb: KnowledgeBase, user: str) -> dict[str, Any]:
    """How many facts, entities, relations and documents ``user`` sees; the top relations."""
    with kb.db_read() as s:
        def count(q: sa.Select) -> int:
            return s.scalar(sa.select(sa.func.count()).select_from(q.subquery())) or 0

        figures: dict[str, Any] = {
            "triples (global)": count(sa.select(KgTriple.id).where(
                KgTriple.scope == str(Scope.everyone()))),
            "triples (yours)": count(sa.select(KgTriple.id).where(
                KgTriple.scope == str(Scope.of(user)))),
            "entities": count(sa.select(KgName.node_id).distinct()
                              .where(visible(KgName.scope, user))),
            "relations": count(sa.select(KgTriple.relation_id).distinct()
                               .where(visible(KgTriple.scope, user))),
            "documents": count(sa.select(KgDocument.id).where(visible(KgDocument.scope, user))),
            "passages": count(sa.select(KgChunk.id).join(KgDocument).where(
                visible(KgDocument.scope, user))),
        }
        top = s.execute(sa.select(KgRelation.label, sa.func.count()).join(
            KgTriple, KgTriple.relation_id == KgRelation.id).where(
            visible(KgTriple.scope, user)).group_by(KgRelation.label)
            .order_by(sa.func.count().desc()).limit(10)).all()
    figures["top_relations"] = dict(top)
    return figures
