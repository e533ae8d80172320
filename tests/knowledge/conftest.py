"""Fixtures for the knowledge tests: a real SQLite file with the KG QA graph loaded once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dialoop.config import Settings, load_settings
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.store import Database, open_database

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = open_database(settings.resolved_database_url)
    yield database
    database.close()


@pytest.fixture
def kb(db: Database, settings: Settings) -> KnowledgeBase:
    return KnowledgeBase(db, settings)


@pytest.fixture(scope="module")
def kgqa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    """The examples/kgqa graph in its own database, shared by a module's tests."""
    home = tmp_path_factory.mktemp("kgqa-home")
    settings = load_settings(home=home)
    database = open_database(settings.resolved_database_url)
    knowledge = KnowledgeBase(database, settings)
    knowledge.import_file(EXAMPLES / "kgqa" / "graph.jsonl", user="operator",
                           scope=Scope.everyone())
    yield knowledge
    database.close()
