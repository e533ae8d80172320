"""A database held by another process gives one clear error, and nothing half-written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dialoop.dialogue.session import Sessions
from dialoop.errors import DatabaseLockedError, StoreError
from dialoop.store import open_database


def test_locked_database_is_reported_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = open_database(f"sqlite:///{path}", timeout=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process writing for a long time
    try:
        with pytest.raises(DatabaseLockedError, match="is locked: another process"):
            Sessions(db).create("ann", name="trip")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert Sessions(db).list("ann") == []  # nothing was stored
    db.close()


def test_unusable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises((StoreError, OSError)):
        open_database(f"sqlite:///{tmp_path / 'file' / 'x.db'}")
