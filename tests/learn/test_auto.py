"""Consolidation that starts by itself: after K new lessons or ratings, or when the server
has been idle with some waiting; one run at a time, one worker.

No worker process is started here (``worker.spawn`` is replaced by a stand-in that
records its calls); tests/integration/test_web.py runs the real one from the web page.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from dialoop.assistant import Parts, open_parts
from dialoop.config import load_settings
from dialoop.dialogue.session import Sessions
from dialoop.learn import worker
from dialoop.learn.loop import LearningLoop
from dialoop.serve.learning import AutoLearner
from dialoop.store.models import LearnRun, utcnow
from tests.fakes import HashEmbedder

QUESTIONS = [f"What is the capital of Veltria {n}?" for n in range(10)]


class _Worker:
    """Stands in for the worker process ``spawn`` starts: alive until told otherwise."""

    def __init__(self) -> None:
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[_Worker]:
    started: list[_Worker] = []

    def spawn(settings: object) -> _Worker:
        started.append(_Worker())
        return started[-1]

    monkeypatch.setattr(worker, "spawn", spawn)
    return started


@contextmanager
def _parts(**settings: object) -> Iterator[Parts]:
    parts = open_parts(load_settings(**settings), embedder=HashEmbedder())
    try:
        yield parts
    finally:
        parts.close()


@pytest.fixture
def parts(dialoop_home: object) -> Iterator[Parts]:
    with _parts(learn_auto_after=3, learn_auto_idle_seconds=60) as parts:
        yield parts


def _teach(loop: LearningLoop, n: int, start: int = 0) -> None:
    for q in QUESTIONS[start:start + n]:
        loop.teach(q, "Karmoss", user="ann")


def _rate(parts: Parts, value: int = -1) -> None:
    sessions = Sessions(parts.db)
    session = sessions.create("ann")
    sessions.add_turn(session, "user", "Hello?")
    turn = sessions.add_turn(session, "assistant", "Hi.")
    parts.learning.rate(turn.id, value, user="ann")


def _finish(parts: Parts, run_id: int, *, started: bool = True) -> None:
    with parts.db.write() as s:
        run = s.get(LearnRun, run_id)
        assert run is not None
        run.status = "done"
        if started:
            run.started_at = run.started_at or utcnow()
        run.finished_at = utcnow()


def _runs(parts: Parts) -> list[tuple[str, str]]:
    with parts.db.read() as s:
        return [(r.status, r.trigger) for r in
                s.scalars(sa.select(LearnRun).order_by(LearnRun.id))]


def test_k_lessons_queue_one_run(parts: Parts, spawned: list[_Worker]) -> None:
    loop = parts.learning
    _teach(loop, 2)
    assert loop.maybe_start_run() is None and spawned == []  # 2 < K = 3
    _teach(loop, 1, start=2)
    run = loop.maybe_start_run()
    assert run is not None and run.trigger == "threshold"
    assert _runs(parts) == [("queued", "threshold")] and len(spawned) == 1
    # Never two runs: more feedback while one is queued (or running) queues nothing.
    _teach(loop, 3, start=3)
    assert loop.maybe_start_run() is None and loop.maybe_start_run(idle_for=999) is None
    assert len(_runs(parts)) == 1 and len(spawned) == 1
    # What came after the run started counts towards the next one.
    with parts.db.write() as s:
        row = s.get(LearnRun, run.id)
        assert row is not None
        row.started_at = row.created_at  # the worker took it at once, before those 3
    _finish(parts, run.id)
    spawned[0].returncode = 0  # the worker exited with its queue done
    assert worker.pending_feedback(parts.db).lessons == 3
    assert loop.maybe_start_run() is not None
    assert _runs(parts) == [("done", "threshold"), ("queued", "threshold")]
    assert len(spawned) == 2


def test_ratings_count(parts: Parts, spawned: list[_Worker]) -> None:
    _teach(parts.learning, 1)
    _rate(parts)
    assert worker.pending_feedback(parts.db).to_dict() == {"lessons": 1, "ratings": 1}
    assert parts.learning.maybe_start_run() is None
    _rate(parts, +1)  # bare ratings: one lesson and two ratings make K = 3
    assert parts.learning.maybe_start_run() is not None
    assert parts.learning.status(user="ann")["since_last_run"] == {"lessons": 0, "ratings": 0}


def test_idle_with_something_waiting(parts: Parts, spawned: list[_Worker]) -> None:
    loop = parts.learning
    assert loop.maybe_start_run(idle_for=3600) is None  # idle, but nothing to learn
    _rate(parts)
    assert loop.maybe_start_run(idle_for=59) is None  # not idle long enough (T = 60)
    assert loop.maybe_start_run() is None  # idleness unknown (the library): no
    run = loop.maybe_start_run(idle_for=60)
    assert run is not None and run.trigger == "idle" and len(spawned) == 1
    _finish(parts, run.id)
    assert loop.maybe_start_run(idle_for=3600) is None  # a run started since: nothing waits


def test_a_queued_run_without_a_worker_gets_one(parts: Parts, spawned: list[_Worker],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _teach(parts.learning, 3)
    run = parts.learning.maybe_start_run()
    assert run is not None and len(spawned) == 1
    spawned[0].returncode = 0  # it exited before it saw the run
    monkeypatch.setattr(worker, "worker_running", lambda home: False)
    assert parts.learning.maybe_start_run() is None
    assert len(spawned) == 1  # just queued: a worker may be on its way
    with parts.db.write() as s:
        s.get(LearnRun, run.id).created_at = utcnow() - timedelta(minutes=1)  # type: ignore[union-attr]
    assert parts.learning.maybe_start_run() is None  # no second run…
    assert len(spawned) == 2 and _runs(parts) == [("queued", "threshold")]  # …a new worker
    monkeypatch.setattr(worker, "worker_running", lambda home: True)
    spawned[1].returncode = 0
    parts.learning.maybe_start_run()
    assert len(spawned) == 2  # one holds the lock: it will get there


def test_only_servers_run_by_themselves_unless_told(dialoop_home: Path,
                                                    spawned: list[_Worker]) -> None:
    with _parts(learn_auto_after=2) as parts:  # the library's default: feedback only stores
        _teach(parts.learning, 3)
        assert _runs(parts) == [] and spawned == []
    with _parts(learn_auto_after=2, learn_auto=True, home=dialoop_home / "2") as parts:
        _teach(parts.learning, 2)  # on: the feedback call itself queues the run
        assert _runs(parts) == [("queued", "threshold")] and len(spawned) == 1


def test_the_servers_task_asks_and_stops(parts: Parts, spawned: list[_Worker]) -> None:
    _rate(parts)
    idle = [0.0]
    auto = AutoLearner(parts.learning, lambda: idle[0], poll=0.01)
    assert auto.on and auto.describe() == {"on": True, "after": 3, "idle_seconds": 60}

    async def serve() -> None:
        auto.start()
        await asyncio.sleep(0.1)
        assert _runs(parts) == []  # busy answering: not idle
        idle[0] = 61.0
        for _ in range(3000):  # up to 30 s: a loaded machine may be slow to poll
            if _runs(parts):
                break
            await asyncio.sleep(0.01)
        await auto.stop()

    asyncio.run(serve())
    assert _runs(parts) == [("queued", "idle")] and len(spawned) == 1


def test_off_means_off(dialoop_home: Path, spawned: list[_Worker]) -> None:
    with _parts(learn_auto=False, learn_auto_after=1) as parts:
        auto = AutoLearner(parts.learning, lambda: 1e9, poll=0.01)
        assert not auto.on

        async def serve() -> None:
            auto.start()
            await asyncio.sleep(0.05)
            await auto.stop()

        _teach(parts.learning, 2)
        asyncio.run(serve())
        assert _runs(parts) == [] and spawned == []
