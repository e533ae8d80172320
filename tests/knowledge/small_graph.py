"""A small graph for the reasoner's stage tests: books, people, places, products, a store.

Built from JSONL records (the format users import) into a real SQLite file; the linker
and the relation matcher get no embedder, so nothing loads MiniLM.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dialoop.config import load_settings
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.graph import Graph
from dialoop.knowledge.linking import Linker, RelationMatcher, RelationMention
from dialoop.knowledge.reasoning import Reasoner
from dialoop.store import open_database

RELATIONS = {  # key: (label, aliases)
    "author": ("author", ["wrote", "written by", "writer"]),
    "published": ("publication year", ["published"]),
    "birthplace": ("birthplace", ["born in", "born"]),
    "country": ("country", ["located in"]),
    "capital": ("capital", ["capital city"]),
    "population": ("population", ["people live"]),
    "price": ("price", ["cost", "costs", "how much"]),
    "weight": ("weight", ["weighs", "heavy"]),
    "maker": ("maker", ["made by", "makes"]),
    "ceo": ("chief executive", ["ceo"]),
    "opening_hours": ("opening hours", ["hours", "open"]),
    "ships_to": ("ships to", ["ship to"]),
    "in_stock": ("in stock", ["available"]),
}
ENTITIES = {  # label: class
    "Salt Orchard": "Book", "Glass Lighthouse": "Book", "Quiet Engine": "Book",
    "Mara Quell": "Person", "Ivo Brand": "Person", "Sela Brin": "Person",
    "Lindhaven": "City", "Port Alder": "City",
    "Veloria": "Country", "Ostmark": "Country",
    "Aurora Lamp": "Product", "Ember Toaster": "Product", "Candela Bulb": "Product",
    "Brightwell Labs": "Company", "Nimbus Home": "Store",
}
FACTS = [  # (subject, relation, object entity label, or a {"value": …} literal)
    ("Salt Orchard", "author", "Mara Quell"), ("Salt Orchard", "published", {"value": 2001}),
    ("Glass Lighthouse", "author", "Mara Quell"),
    ("Glass Lighthouse", "published", {"value": 2010}),
    ("Quiet Engine", "author", "Ivo Brand"), ("Quiet Engine", "published", {"value": 1999}),
    ("Mara Quell", "birthplace", "Lindhaven"), ("Ivo Brand", "birthplace", "Port Alder"),
    ("Lindhaven", "country", "Veloria"), ("Port Alder", "country", "Veloria"),
    ("Lindhaven", "population", {"value": 310000}),
    ("Veloria", "capital", "Port Alder"),
    ("Aurora Lamp", "price", {"value": 20, "unit": "EUR"}),
    ("Aurora Lamp", "weight", {"value": 1.5, "unit": "kg"}),
    ("Aurora Lamp", "maker", "Brightwell Labs"),
    ("Aurora Lamp", "in_stock", {"value": True}),
    ("Ember Toaster", "price", {"value": 35, "unit": "EUR"}),
    ("Ember Toaster", "weight", {"value": 2.5, "unit": "kg"}),
    ("Ember Toaster", "maker", "Brightwell Labs"),
    ("Candela Bulb", "price", {"value": 5, "unit": "EUR"}),
    ("Brightwell Labs", "ceo", "Sela Brin"),
    ("Nimbus Home", "opening_hours", {"value": "9:00 to 17:00, Monday to Friday"}),
    ("Nimbus Home", "ships_to", "Veloria"), ("Nimbus Home", "ships_to", "Ostmark"),
]


def records() -> list[dict[str, object]]:
    out: list[dict[str, object]] = [
        {"relation": key, "label": label, "aliases": aliases}
        for key, (label, aliases) in RELATIONS.items()]
    out += [{"entity": label, "label": label, "type": cls} for label, cls in ENTITIES.items()]
    for s, r, o in FACTS:
        out.append({"subject": s, "relation": r, **(o if isinstance(o, dict) else {"object": o})})
    return out


@dataclass
class SmallGraph:
    graph: Graph
    linker: Linker
    matcher: RelationMatcher
    reasoner: Reasoner

    def id(self, label: str) -> int:
        """The node id of an entity (or class) by its label."""
        return self.graph.entity_by_key(label).id

    def relation(self, key: str, *positions: int, score: float = 1.0,
                 lexical: bool = True) -> RelationMention:
        """A mention of relation ``key`` at the question's token ``positions``."""
        rid = self.graph.relation_id(key)
        assert rid is not None, key
        return RelationMention(rid, key, RELATIONS[key][0], score, lexical, frozenset(positions))


@contextmanager
def small_graph(home: Path) -> Iterator[SmallGraph]:
    settings = load_settings(home=home)
    db = open_database(settings.resolved_database_url)
    kb = KnowledgeBase(db, settings)
    path = home / "graph.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records()) + "\n")
    kb.import_file(path, user="operator")  # for everyone
    linker, matcher = Linker(kb.graph), RelationMatcher(kb.graph)  # no embedder
    try:
        yield SmallGraph(kb.graph, linker, matcher, Reasoner(kb.graph, linker, matcher))
    finally:
        db.close()
