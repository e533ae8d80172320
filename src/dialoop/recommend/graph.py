"""Catalogue items from the knowledge graph: the global entities of one type.

Each entity becomes an item titled with its label; its facts become the item's
attributes (``directed_by: [Michael Mann]``, ``has_genre: [Crime]``), which the content
model reads (:meth:`Item.document`) and which make an explanation's path ("Heat
—directed_by→ Michael Mann ←directed_by— Collateral") a path in the graph.
"""

from __future__ import annotations

from dialoop.errors import InvalidInputError
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.browse import entity_view
from dialoop.knowledge.graph import TYPE
from dialoop.recommend.read import Item

__all__ = ["items_from_graph"]

MAX_FACTS = 200  # per entity


def items_from_graph(kb: KnowledgeBase, kind: str, *, user: str) -> list[Item]:
    """The global entities of type ``kind`` (e.g. "Movie") as items, keyed ``kg:<label>``."""
    members = kb.aliases(kind)
    if not members:
        raise InvalidInputError(f"The knowledge graph has no entities of type {kind!r}: "
                                "`dialoop kg stats` lists its types.")
    items = []
    for label in sorted(members):
        _, triples = entity_view(kb, label, user, limit=MAX_FACTS)
        attributes: dict[str, list[str]] = {}
        for t in triples:
            if t.subject.label != label or t.relation_key == TYPE:
                continue
            values = attributes.setdefault(t.relation, [])
            if t.object.label not in values:
                values.append(t.object.label)
        items.append(Item(f"kg:{label}", label, "", attributes))  # document() reads them
    return items
