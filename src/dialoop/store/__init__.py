"""Durable state: SQLAlchemy 2 over SQLite (default) or PostgreSQL (by URL).

Use :meth:`Database.write` for anything that changes data and :meth:`Database.read`
for the rest. Leaving a ``write()`` block commits: once it returns, the data is on
disk (SQLite in WAL mode with ``synchronous=FULL``) and survives a crash.

On SQLite a write transaction starts with ``BEGIN IMMEDIATE``, taking the write lock
up front, so two writers queue on ``busy_timeout`` instead of failing halfway when
one tries to upgrade a read lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event, exc, orm

from dialoop.errors import DatabaseLockedError, StoreError
from dialoop.store.migrations import migrate

__all__ = ["Database", "open_database"]


class Database:
    """A connection pool and two kinds of transaction. Thread-safe."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = sa.make_url(url)
        self.timeout = timeout
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": timeout} if self.is_sqlite else {}
        self.engine = sa.create_engine(url, connect_args=connect_args)
        if self.is_sqlite:
            _configure_sqlite(self.engine, timeout)
        writer = self.engine.execution_options(dialoop_write=True)
        self._read = orm.sessionmaker(self.engine, expire_on_commit=False)
        self._write = orm.sessionmaker(writer, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[orm.Session]:
        with self._errors(), self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[orm.Session]:
        with self._errors(), self._write.begin() as session:
            yield session

    def migrate(self) -> list[str]:
        with self._errors(), self.engine.execution_options(dialoop_write=True).begin() as conn:
            return migrate(conn)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except exc.OperationalError as e:
            text = str(e.orig)
            if "locked" in text or "busy" in text:
                raise DatabaseLockedError(
                    f"The database {self.url.render_as_string(hide_password=True)} is locked: "
                    f"another process held it for over {self.timeout:g} s. Wait for it or "
                    "stop it, then try again (DIALOOP_DB_TIMEOUT sets the wait)."
                ) from None
            raise StoreError(
                f"Cannot use the database {self.url.render_as_string(hide_password=True)}: "
                f"{text}. Check DIALOOP_HOME / DIALOOP_DATABASE_URL."
            ) from None


def open_database(url: str, *, timeout: float = 5.0) -> Database:
    """Open (creating if needed) and migrate the database at ``url``."""
    db = Database(url, timeout=timeout)
    db.migrate()
    return db


def _configure_sqlite(engine: sa.Engine, timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        # Let us issue BEGIN ourselves (pysqlite's own transaction handling is legacy).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("dialoop_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
