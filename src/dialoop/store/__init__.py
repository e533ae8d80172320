"""Durable state: SQLAlchemy 2 over SQLite (default) or PostgreSQL (by URL).

Use :meth:`Database.write` for anything that changes data and :meth:`Database.read`
for the rest. Leaving a ``write()`` block commits: once it returns, the data is on
disk (SQLite in WAL mode with ``synchronous=FULL``) and survives a crash.

On SQLite a write transaction starts with ``BEGIN IMMEDIATE``, taking the write lock
up front, so two writers queue on ``busy_timeout`` instead of failing halfway when
one tries to upgrade a read lock. Reads never take it (WAL lets them run beside a
writer), and opening a database whose schema is current writes nothing: a read-only
command works while another process holds the write lock.

A new SQLite database is private: its directory is created 0700 and the file 0600
(SQLite gives its ``-wal`` and ``-shm`` files the file's mode). Existing files keep
the mode their owner gave them; a database others can read gets a warning.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event, exc, orm

from dialoop.errors import DatabaseLockedError, StoreError
from dialoop.store.migrations import migrate, pending

__all__ = ["Database", "open_database"]

log = logging.getLogger(__name__)

# SQLite's words for a file that is not a database, or one whose pages are damaged.
_CORRUPT = ("SQLITE_NOTADB", "SQLITE_CORRUPT")


class Database:
    """A connection pool and two kinds of transaction. Thread-safe."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = sa.make_url(url)
        self.timeout = timeout
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.path = (Path(self.url.database) if self.is_sqlite
                     and self.url.database not in (None, "", ":memory:") else None)
        if self.path is not None:
            _create_private(self.path)
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
        """Bring the schema up to date; returns the migrations that ran.

        Looks first in a plain read transaction: when nothing is due (the usual case) it
        takes no write lock, so opening works while another process is writing.
        """
        with self._errors():
            with self.engine.connect() as conn:
                if not pending(conn):
                    return []
            with self.engine.execution_options(dialoop_write=True).begin() as conn:
                return migrate(conn)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except exc.DatabaseError as e:
            if getattr(e.orig, "sqlite_errorname", "").startswith(_CORRUPT):
                where = self.path or self.url.database
                raise StoreError(
                    f"{where} is not a valid dialoop database ({e.orig}). Move it aside "
                    f"(mv {where} {where}.broken) to start with an empty one, or restore a "
                    "backup."
                ) from None
            if not isinstance(e, exc.OperationalError):
                raise
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


def _create_private(path: Path) -> None:
    """Create ``path``'s directory (0700) and an empty database file (0600) if missing.

    An empty file is a valid empty SQLite database; creating it ourselves sets its mode
    without touching the process-wide umask (other threads may be creating files).
    """
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        _warn_if_shared(path)
    except OSError as e:
        raise StoreError(
            f"Cannot create the database {path}: {e.strerror}. Check DIALOOP_HOME / "
            "DIALOOP_DATABASE_URL."
        ) from None


def _warn_if_shared(path: Path) -> None:
    """An existing database keeps its mode (its owner may share it on purpose), but a
    readable-by-others one is worth a word: it holds every conversation."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return  # SQLite will say what is wrong with it
    if path.is_file() and mode & 0o044:
        log.warning("%s can be read by other users of this machine (mode %04o): "
                    "chmod 600 %s* unless you share it on purpose.", path, mode, path)


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
