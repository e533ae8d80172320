"""A session's history is seeded in one transaction: a failure or a kill -9 halfway
leaves no turns, and seeding again (a client's retry) stores the whole history once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dialoop.dialogue.session import Sessions
from dialoop.errors import InvalidInputError, StoreError
from dialoop.store import open_database
from dialoop.store.models import Turn

HISTORY = [("user" if i % 2 == 0 else "assistant", f"message {i}") for i in range(2_999)]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'seed.db'}"


@pytest.fixture
def sessions(url: str) -> Iterator[Sessions]:
    db = open_database(url)
    yield Sessions(db)
    db.close()


def _fail_after(k: int):  # type: ignore[no-untyped-def]
    """A listener that fails the write once ``k`` turns are inserted in it."""
    inserted = 0

    def listener(mapper, connection, target) -> None:  # type: ignore[no-untyped-def]
        nonlocal inserted
        inserted += 1
        if inserted > k:
            raise sa.exc.OperationalError("INSERT INTO turns", {}, OSError("disk I/O error"))

    return listener


def test_a_failure_midway_stores_nothing_and_a_retry_stores_everything_once(
        sessions: Sessions) -> None:
    chat = sessions.create("ann", name="long")
    listener = _fail_after(741)
    sa.event.listen(Turn, "after_insert", listener)
    try:
        with pytest.raises(StoreError, match="disk I/O error"):
            sessions.add_turns(chat, HISTORY, only_if_empty=True)
    finally:
        sa.event.remove(Turn, "after_insert", listener)
    assert sessions.turns(chat) == []
    assert sessions.get("long", "ann").title is None  # the title went with the turns

    added = sessions.add_turns(chat, HISTORY, only_if_empty=True)
    assert len(added) == len(HISTORY)
    stored = sessions.turns(chat)
    assert [(t.role, t.content) for t in stored] == HISTORY
    assert [t.position for t in stored] == list(range(1, len(HISTORY) + 1))
    assert sessions.get("long", "ann").title == "message 0"

    assert sessions.add_turns(chat, HISTORY, only_if_empty=True) == []  # seeded: not again
    assert len(sessions.turns(chat)) == len(HISTORY)


def test_kill_9_while_seeding_leaves_no_turns(url: str, sessions: Sessions) -> None:
    chat = sessions.create("ann", name="long")
    seeding = textwrap.dedent(f"""
        import os, signal
        import sqlalchemy as sa
        from dialoop.dialogue.session import Sessions
        from dialoop.store import open_database
        from dialoop.store.models import Turn

        sessions = Sessions(open_database({url!r}))
        chat = sessions.get("long", "ann")
        count = 0

        @sa.event.listens_for(Turn, "after_insert")
        def kill(mapper, connection, target):
            global count
            count += 1
            if count == 741:  # 741 rows written in the transaction: kill -9 now
                os.kill(os.getpid(), signal.SIGKILL)

        history = [("user" if i % 2 == 0 else "assistant", f"message {{i}}")
                   for i in range(2_999)]
        sessions.add_turns(chat, history, only_if_empty=True)
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    done = subprocess.run([sys.executable, "-c", seeding], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert sessions.turns(chat) == []  # the unfinished transaction is gone
    assert len(sessions.add_turns(chat, HISTORY, only_if_empty=True)) == len(HISTORY)
    assert [(t.role, t.content) for t in sessions.turns(chat)] == HISTORY


def test_bad_input_anywhere_in_a_history_is_refused_before_writing(sessions: Sessions) -> None:
    chat = sessions.create("ann")
    for bad in ([*HISTORY[:10], ("robot", "beep")], [*HISTORY[:10], ("user", "half \ud800")]):
        with pytest.raises(InvalidInputError):
            sessions.add_turns(chat, bad)
    assert sessions.turns(chat) == []
    sessions.add_turn(chat, "user", "Hello")
    assert [t.position for t in sessions.turns(chat)] == [1]  # add_turn appends as before
    assert [t.position for t in sessions.add_turns(chat, HISTORY[:2])] == [2, 3]
