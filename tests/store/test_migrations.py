"""Migrations build exactly the schema the ORM expects, once, and SQLite runs in WAL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dialoop.store import open_database
from dialoop.store.migrations import MIGRATIONS
from dialoop.store.models import Base


def test_migrated_schema_matches_the_models(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as conn:
        bookkeeping = {"include_name": lambda name, kind, parent: name != "dialoop_migrations"}
        diff = compare_metadata(MigrationContext.configure(conn, opts=bookkeeping), Base.metadata)
    assert diff == []
    db.close()


def test_migrations_run_once_and_are_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    db = open_database(url)
    assert db.migrate() == []  # a second run has nothing to do
    with db.engine.connect() as conn:
        names = conn.scalars(sa.text("SELECT name FROM dialoop_migrations")).all()
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert sorted(names) == sorted(m.__name__ for m in MIGRATIONS)
    assert mode == "wal"
    db.close()


def test_migration_names_are_numbered_in_order() -> None:
    numbers = [int(m.__name__[1:4]) for m in MIGRATIONS]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
