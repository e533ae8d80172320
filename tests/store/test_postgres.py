"""The same store on PostgreSQL: migrations, sessions, turns, adapters, user scoping."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dialoop.dialogue.session import Sessions, answered
from dialoop.errors import NotFoundError
from dialoop.store import open_database
from dialoop.store.models import Base


def test_store_works_on_postgresql(postgres_url: str) -> None:
    db = open_database(postgres_url)
    assert db.migrate() == []  # idempotent
    with db.engine.connect() as conn:
        skip = {"include_name": lambda name, kind, parent: name != "dialoop_migrations"}
        assert compare_metadata(MigrationContext.configure(conn, opts=skip), Base.metadata) == []
    sessions = Sessions(db)
    s = sessions.create("ann", name="pg")
    for role, text in [("user", "Hi ünïcode"), ("assistant", "Hello"), ("user", "lost")]:
        sessions.add_turn(s, role, text, trace={"k": [1, 2]} if role == "assistant" else None)
    turns = sessions.turns(sessions.get("pg", "ann"))
    assert [t.content for t in answered(turns)] == ["Hi ünïcode", "Hello"]
    assert turns[1].trace == {"k": [1, 2]} and turns[0].created_at.tzinfo is not None
    try:
        sessions.get("pg", "bob")
    except NotFoundError:
        pass
    else:
        raise AssertionError("another user's session was visible")
    sessions.delete("pg", "ann")
    with db.read() as q:
        assert q.scalar(sa.text("SELECT count(*) FROM turns")) == 0
    db.close()
