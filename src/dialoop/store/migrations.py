"""Numbered schema migrations, applied in order, each exactly once.

A migration is a function ``mNNN_what(op)`` taking Alembic's ``Operations``, which
writes portable DDL (SQLite and PostgreSQL). Never edit a migration that has
shipped: add the next one. Applied names are recorded in ``dialoop_migrations``.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from dialoop.store import monitor as _monitor_tables  # noqa: F401  (the ORM side of m012)
from dialoop.store import recommend as _recommend_tables  # noqa: F401  (the ORM side of m013)
from dialoop.store import summaries as _summary_tables  # noqa: F401  (the ORM side of m011)
from dialoop.store.models import UTCDateTime, utcnow

__all__ = ["MIGRATIONS", "migrate", "pending"]

Migration = Callable[[Operations], None]

_applied = sa.Table(
    "dialoop_migrations",
    sa.MetaData(),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)


def m001_sessions_and_turns(op: Operations) -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("title", sa.String(200)),
        sa.Column("system_prompt", sa.Text),
        sa.Column("model", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_sessions_user_name"),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_index("ix_sessions_updated_at", "sessions", ["updated_at"])
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "session_id",
            sa.String(32),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("adapter", sa.String(200)),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("cached_tokens", sa.Integer),
        sa.Column("seconds", sa.Float),
        sa.Column("first_token_seconds", sa.Float),
        sa.Column("trace", sa.JSON),
        sa.UniqueConstraint("session_id", "position", name="uq_turns_session_position"),
    )
    op.create_index("ix_turns_session_id", "turns", ["session_id"])


def m002_adapters(op: Operations) -> None:
    op.create_table(
        "adapters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128)),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_adapters_name_version"),
    )
    op.create_index("ix_adapters_name", "adapters", ["name"])
    op.create_table(
        "adapter_heads",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def m003_learning(op: Operations) -> None:
    """Feedback as given, the lessons drawn from it, and consolidation runs."""
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(32)),
        sa.Column("turn_id", sa.Integer),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("rating", sa.Integer),
        sa.Column("reason", sa.Text),
        sa.Column("question", sa.Text),
        sa.Column("answer", sa.Text),
        sa.Column("rejected", sa.Text),
        sa.Column("adapter", sa.String(200)),
        sa.Column("lesson_id", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_feedback_user_id", "feedback", ["user_id"])
    op.create_index("ix_feedback_turn_id", "feedback", ["turn_id"])
    op.create_table(
        "lessons",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("rejected", sa.Text),
        sa.Column("key_terms", sa.JSON, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("superseded_by", sa.Integer),
        sa.Column("feedback_id", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime),
    )
    op.create_index("ix_lessons_user_id", "lessons", ["user_id"])
    op.create_index("ix_lessons_scope", "lessons", ["scope"])
    op.create_index("ix_lessons_status", "lessons", ["status"])
    op.create_table(
        "learn_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("heartbeat_at", UTCDateTime),
        sa.Column("pid", sa.Integer),
        sa.Column("host", sa.String(200)),
        sa.Column("stage", sa.String(200)),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_learn_runs_status", "learn_runs", ["status"])


def m004_knowledge(op: Operations) -> None:
    """The knowledge graph (nodes, names, relations, triples) and the document store."""
    op.create_table(
        "kg_nodes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("datatype", sa.String(64)),
        sa.Column("unit", sa.String(32)),
        sa.Column("number", sa.Float),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("kind", "key", name="uq_kg_nodes_kind_key"),
    )
    op.create_table(
        "kg_names",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("node_id", sa.Integer, sa.ForeignKey("kg_nodes.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("norm", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("node_id", "norm", "scope", name="uq_kg_names_node_norm_scope"),
    )
    op.create_index("ix_kg_names_norm", "kg_names", ["norm"])
    op.create_table(
        "kg_relations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(512), nullable=False, unique=True),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("aliases", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "kg_triples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subject_id", sa.Integer, sa.ForeignKey("kg_nodes.id"), nullable=False),
        sa.Column("relation_id", sa.Integer, sa.ForeignKey("kg_relations.id"), nullable=False),
        sa.Column("object_id", sa.Integer, sa.ForeignKey("kg_nodes.id"), nullable=False),
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("added_by", sa.String(128), nullable=False),
        sa.Column("lesson_id", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("subject_id", "relation_id", "object_id", "scope",
                            name="uq_kg_triples_fact"),
    )
    op.create_index("ix_kg_triples_object", "kg_triples", ["object_id", "relation_id"])
    op.create_index("ix_kg_triples_lesson", "kg_triples", ["lesson_id"])
    op.create_table(
        "kg_documents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("added_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.UniqueConstraint("scope", "digest", name="uq_kg_documents_scope_digest"),
    )
    op.create_table(
        "kg_chunks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.Integer,
                  sa.ForeignKey("kg_documents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("heading", sa.String(255)),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_kg_chunks_document_id", "kg_chunks", ["document_id"])


def m006_accounts(op: Operations) -> None:
    op.create_table(
        "accounts",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "user_id",
            sa.String(128),
            sa.ForeignKey("accounts.user_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("secret_hash", sa.String(300), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])


def m007_turn_state(op: Operations) -> None:
    """The dialogue state gets a column of its own (it lived inside the trace JSON)."""
    op.add_column("turns", sa.Column("state", sa.JSON))
    turns = sa.table("turns", sa.column("id", sa.Integer), sa.column("role", sa.String),
                     sa.column("trace", sa.JSON), sa.column("state", sa.JSON))
    conn = op.get_bind()
    rows = conn.execute(sa.select(turns.c.id, turns.c.trace).where(
        turns.c.role == "assistant", turns.c.trace.is_not(None))).all()
    for turn_id, trace in rows:
        state = ((trace or {}).get("dialogue") or {}).get("state_after")
        if state is not None:
            conn.execute(sa.update(turns).where(turns.c.id == turn_id).values(state=state))


def m008_one_scope(op: Operations) -> None:
    """One encoding of scope everywhere: "global" or "user:<id>" (dialoop.evidence.Scope).

    Lessons and feedback said "user"/"global" beside a user id; knowledge facts, names
    and documents said "" for everyone and the bare user id otherwise.
    """
    for name, old in (("lessons", 16), ("feedback", 16), ("kg_triples", 128),
                      ("kg_names", 128), ("kg_documents", 128)):
        with op.batch_alter_table(name) as batch:  # SQLite rebuilds the table
            batch.alter_column("scope", existing_type=sa.String(old), type_=sa.String(140),
                               existing_nullable=False)
    conn = op.get_bind()
    for name in ("lessons", "feedback"):
        t = sa.table(name, sa.column("scope", sa.String), sa.column("user_id", sa.String))
        conn.execute(sa.update(t).where(t.c.scope == "user")
                     .values(scope=sa.literal("user:") + t.c.user_id))
    for name in ("kg_triples", "kg_names", "kg_documents"):
        t = sa.table(name, sa.column("scope", sa.String))
        conn.execute(sa.update(t).where(t.c.scope == "").values(scope="global"))
        conn.execute(sa.update(t).where(t.c.scope != "global")
                     .values(scope=sa.literal("user:") + t.c.scope))


def m009_lesson_wordings(op: Operations) -> None:
    """Wordings a lesson learned from use (a re-correction of a question it missed)."""
    op.create_table(
        "lesson_wordings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("lesson_id", sa.Integer, sa.ForeignKey("lessons.id"), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("feedback_id", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_lesson_wordings_lesson_id", "lesson_wordings", ["lesson_id"])


def m010_relation_aliases(op: Operations) -> None:
    """Relation aliases taught by a user's correction of a graph answer, in its scope."""
    op.create_table(
        "kg_relation_aliases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("relation_id", sa.Integer,
                  sa.ForeignKey("kg_relations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("phrase", sa.String(255), nullable=False),
        sa.Column("scope", sa.String(140), nullable=False),
        sa.Column("added_by", sa.String(128), nullable=False),
        sa.Column("lesson_id", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("relation_id", "phrase", "scope", name="uq_kg_relation_aliases"),
    )
    op.create_index("ix_kg_relation_aliases_scope", "kg_relation_aliases", ["scope"])


def m011_context_summaries(op: Operations) -> None:
    """Summaries of what fell out of the context window (dialoop.dialogue.summary), one per
    session, summariser kind and number of messages covered."""
    op.create_table(
        "context_summaries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(32),
                  sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("covers", sa.Integer, nullable=False),
        sa.Column("turns", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("session_id", "kind", "covers", name="uq_context_summaries_covers"),
    )
    op.create_index("ix_context_summaries_session_id", "context_summaries", ["session_id"])


def m012_monitor(op: Operations) -> None:
    """Sentiment monitoring (dialoop.monitor): items, per-topic counts per time bucket,
    alerts, analyst corrections and trained heads; every row is one user's."""
    op.create_table(
        "monitor_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("source", sa.String(200)),
        sa.Column("time", UTCDateTime, nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("sentiment", sa.String(16), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("head_version", sa.Integer, nullable=False),
        sa.Column("corrected", sa.Boolean, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_monitor_items_user_time", "monitor_items", ["user_id", "time"])
    op.create_table(
        "monitor_counts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("bucket_seconds", sa.Integer, nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("bucket", UTCDateTime, nullable=False),
        sa.Column("sentiment", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.UniqueConstraint("user_id", "bucket_seconds", "topic", "bucket", "sentiment",
                            name="uq_monitor_counts_cell"),
    )
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("bucket", UTCDateTime, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("user_id", "rule", "topic", "bucket",
                            name="uq_monitor_alerts_firing"),
    )
    op.create_index("ix_monitor_alerts_user_id", "monitor_alerts", ["user_id"])
    op.create_table(
        "monitor_corrections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("item_id", sa.Integer,
                  sa.ForeignKey("monitor_items.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("old_sentiment", sa.String(16), nullable=False),
        sa.Column("sentiment", sa.String(16), nullable=False),
        sa.Column("old_topic", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_monitor_corrections_user_id", "monitor_corrections", ["user_id"])
    op.create_index("ix_monitor_corrections_item_id", "monitor_corrections", ["item_id"])
    op.create_table(
        "monitor_heads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("weights", sa.LargeBinary, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("user_id", "version", name="uq_monitor_heads_version"),
    )


def m013_recommend(op: Operations) -> None:
    """Recommendation (dialoop.recommend): the shared catalogue, each user's events, and the
    trained models."""
    op.create_table(
        "rec_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "rec_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("rec_items.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("time", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_rec_events_user_time", "rec_events", ["user_id", "time"])
    op.create_index("ix_rec_events_item_id", "rec_events", ["item_id"])
    op.create_table(
        "rec_models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("version", sa.Integer, nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )


MIGRATIONS: list[Migration] = [
    m001_sessions_and_turns,
    m002_adapters,
    m003_learning,
    m004_knowledge,
    m006_accounts,
    m007_turn_state,
    m008_one_scope,
    m009_lesson_wordings,
    m010_relation_aliases,
    m011_context_summaries,
    m012_monitor,
    m013_recommend,
]


def pending(conn: sa.Connection) -> list[str]:
    """The migrations ``conn``'s database has not seen, found by reading only."""
    if not sa.inspect(conn).has_table(_applied.name):
        return [m.__name__ for m in MIGRATIONS]
    done = set(conn.scalars(sa.select(_applied.c.name)))
    return [m.__name__ for m in MIGRATIONS if m.__name__ not in done]


def migrate(conn: sa.Connection) -> list[str]:
    """Apply the migrations ``conn``'s database has not seen; return their names.

    Runs inside the caller's transaction, which must hold the database's write lock
    so that two processes starting at once do not both migrate.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(72061992)"))
    _applied.create(conn, checkfirst=True)
    done = set(conn.scalars(sa.select(_applied.c.name)))
    op = Operations(MigrationContext.configure(conn))
    ran = []
    for migration in MIGRATIONS:
        if migration.__name__ not in done:
            migration(op)
            conn.execute(_applied.insert().values(name=migration.__name__, applied_at=utcnow()))
            ran.append(migration.__name__)
    return ran
