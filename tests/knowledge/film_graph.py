"""A small film graph whose relations carry only their own names (``starred_actors``,
``directed_by``, ``written_by``, ``release_year``), loaded into a knowledge base whose
relation matcher has no embedder (nothing loads MiniLM)."""

from __future__ import annotations

import json
from pathlib import Path

from dialoop.config import Settings
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.linking import Linker, RelationMatcher
from dialoop.knowledge.reasoning import Reasoner

FILMS = [("Glass Harbor", ["Mira Castell", "Jonah Reyes"], "Tomas Brandt", "Ilse Morgan", 2011),
         ("Copper Sky", ["Elena Voss", "Jonah Reyes"], "Tomas Brandt", "Nadia Fenn", 2008),
         ("Salt Road", ["Elena Voss"], "Nadia Fenn", "Tomas Brandt", 2015)]
APPEAR = "What films does Elena Voss appear in?"


def film_records(films: list[tuple[str, list[str], str, str, int]] = FILMS,
                 ) -> list[dict[str, object]]:
    """Import records of ``films``: (title, actors, director, writer, year) each."""
    rows: list[dict[str, object]] = []
    for title, actors, director, writer, year in films:
        rows += [{"subject": title, "relation": "starred_actors", "object": a} for a in actors]
        rows += [{"subject": title, "relation": "directed_by", "object": director},
                 {"subject": title, "relation": "written_by", "object": writer},
                 {"subject": title, "relation": "release_year", "value": year}]
    return rows


def without_embedder(kb: KnowledgeBase) -> KnowledgeBase:
    """The knowledge base matching relations by their words only (no MiniLM)."""
    kb.linker, kb.matcher = Linker(kb.graph), RelationMatcher(kb.graph)
    kb.reasoner = Reasoner(kb.graph, kb.linker, kb.matcher)
    return kb


def write_films(settings: Settings) -> Path:
    """The film graph as a JSONL file in the settings' home."""
    path = settings.home / "films.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in film_records()) + "\n")
    return path


def load_films(kb: KnowledgeBase, settings: Settings) -> KnowledgeBase:
    kb.import_file(write_films(settings), user="operator", scope=Scope.everyone())
    return without_embedder(kb)
