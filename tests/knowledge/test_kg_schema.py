"""The knowledge ORM classes and the m004_knowledge migration describe the same tables."""

from __future__ import annotations

import sqlalchemy as sa

from dialoop.knowledge import schema
from dialoop.store import Database

TABLES = [schema.KgNode, schema.KgName, schema.KgRelation, schema.KgTriple, schema.KgDocument,
          schema.KgChunk, schema.KgRelationAlias]


def test_migration_creates_what_the_models_declare(db: Database) -> None:
    inspector = sa.inspect(db.engine)
    for model in TABLES:
        table = model.__table__
        migrated = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(migrated) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            assert migrated[column.name]["nullable"] == column.nullable, (table.name, column.name)
        uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
        declared = {tuple(c.name for c in u.columns) for u in table.constraints
                    if isinstance(u, sa.UniqueConstraint)}
        declared |= {(c.name,) for c in table.columns if c.unique}
        assert declared <= uniques, table.name
        indexed = {tuple(i["column_names"]) for i in inspector.get_indexes(table.name)}
        assert {tuple(c.name for c in i.columns) for i in table.indexes} <= indexed | uniques
