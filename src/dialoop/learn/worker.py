"""Consolidation runs: a durable queue in the database, worked off by one process at a time.

``enqueue`` adds a run (or returns the one already waiting); ``spawn`` starts a
worker process in the background (``python -m dialoop.learn.worker``), which takes
the worker lock (a file lock, released by the OS even on kill -9), marks any run
left ``running`` by a dead worker as ``interrupted``, and works off the queue.
Chat and the server keep answering meanwhile: they only read adapter heads.

One run trains every adapter line whose active lessons changed:

    "global"     the global lessons
    "user:<id>"  the global lessons plus that user's own

each from the base model (:mod:`~dialoop.learn.consolidate`), judges it
(:mod:`~dialoop.learn.gate`) on the llama.cpp form it would serve as, and
promotes it or rejects it. A line whose lessons were all forgotten goes back to
the base model. Nothing a run does touches the lessons; a head moves only in one
committed update after the gate, so a run killed at any point leaves the previous
adapter serving.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dialoop.config import Settings, load_settings
from dialoop.errors import DialoopError, InvalidInputError
from dialoop.store import Database, open_database
from dialoop.store.models import Feedback, LearnRun, Lesson, utcnow

__all__ = [
    "Pending", "Progress", "busy", "enqueue", "get_run", "latest_runs", "pending_feedback",
    "queued", "spawn", "wait_for", "work", "worker_running",
]

log = logging.getLogger(__name__)

Progress = Callable[[LearnRun], None]
# Settings a run may override (tests and `learn run --epochs …` use them).
RUN_OPTIONS = frozenset({
    "learn_epochs", "learn_rank", "learn_layers", "learn_lr", "learn_replay", "learn_gate_probes",
    "learn_gate_sample", "learn_gate_reliability", "learn_gate_generalization",
    "learn_gate_locality", "learn_route_similarity",
})


def enqueue(
    db: Database, *, requested_by: str, trigger: str = "manual",
    options: dict[str, Any] | None = None,
) -> LearnRun:
    """Queue a run; a run already waiting with the same options is returned instead."""
    options = dict(options or {})
    unknown = set(options) - RUN_OPTIONS
    if unknown:
        raise InvalidInputError(
            f"Unknown run option(s) {sorted(unknown)}; allowed: {sorted(RUN_OPTIONS)}."
        )
    with db.write() as s:
        waiting = s.scalar(sa.select(LearnRun).where(LearnRun.status == "queued")
                           .order_by(LearnRun.id))
        if waiting is not None and waiting.settings == options:
            return waiting
        run = LearnRun(status="queued", requested_by=requested_by, trigger=trigger,
                       settings=options, report={}, progress=0.0)
        s.add(run)
    return run


def spawn(settings: Settings) -> subprocess.Popen[bytes]:
    """Start a worker process in the background; it exits when the queue is empty.

    It runs with the caller's settings (``dialoop serve --model X`` trains on X), passed
    as ``DIALOOP_*`` variables.
    """
    env = {**os.environ, **_environment(settings)}
    log_dir = settings.home / "learn"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "worker.log", "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dialoop.learn.worker"], env=env, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )


def _environment(settings: Settings) -> dict[str, str]:
    """The ``DIALOOP_*`` variables that give another process these settings."""
    env = {"DIALOOP_HOME": str(settings.home)}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, list | dict):
            text = json.dumps(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"DIALOOP_{name.upper()}"] = text
    return env


def get_run(db: Database, run_id: int) -> LearnRun:
    from dialoop.errors import NotFoundError

    with db.read() as s:
        run = s.get(LearnRun, run_id)
    if run is None:
        raise NotFoundError(f"No consolidation run {run_id}.")
    return run


def latest_runs(db: Database, limit: int = 20) -> list[LearnRun]:
    with db.read() as s:
        return list(s.scalars(sa.select(LearnRun).order_by(LearnRun.id.desc()).limit(limit)))


def wait_for(
    db: Database, run_id: int, *, progress: Progress | None = None, poll: float = 0.5,
    settings: Settings | None = None, worker: subprocess.Popen[bytes] | None = None,
) -> LearnRun:
    """Poll until run ``run_id`` has finished; report its progress on the way.

    With ``settings``, a run still queued after its worker exited gets a new worker:
    the one that held the lock may have finished its queue just before this run came.
    """
    while True:
        run = get_run(db, run_id)
        if progress is not None:
            progress(run)
        if run.status not in ("queued", "running"):
            return run
        if (settings is not None and run.status == "queued"
                and (worker is None or worker.poll() is not None)):
            worker = spawn(settings)
        time.sleep(poll)


# -- the worker -------------------------------------------------------------------------------


@contextmanager
def worker_lock(home: Path, wait: float = 0.0) -> Iterator[bool]:
    """Hold the one worker lock of this DIALOOP_HOME if it is free (within ``wait``
    seconds); yields whether we got it."""
    path = home / "learn" / "worker.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    with open(path, "a+") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.2)
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def work(settings: Settings, *, on_progress: Progress | None = None, lock_wait: float = 0.0
         ) -> list[int]:
    """Work off the queue in this process; return the ids of the runs done.

    Returns (an empty list) if another worker holds the lock for over ``lock_wait`` s.
    """
    db = open_database(settings.resolved_database_url, timeout=settings.db_timeout)
    done: list[int] = []
    try:
        with worker_lock(settings.home, lock_wait) as mine:
            if not mine:
                return done
            _reap(db)
            shutil.rmtree(settings.home / "learn" / "tmp", ignore_errors=True)  # crash debris
            while (run := _claim(db)) is not None:
                _execute(settings, db, run, on_progress)
                done.append(run.id)
    finally:
        db.close()
    return done


def _reap(db: Database) -> None:
    """We hold the lock, so no other worker runs: a ``running`` run's process is dead."""
    with db.write() as s:
        for run in s.scalars(sa.select(LearnRun).where(LearnRun.status == "running")):
            run.status, run.finished_at = "interrupted", utcnow()
            run.error = "The worker process stopped during the run (killed or crashed)."
            log.warning("run %s was interrupted; the previous adapters kept serving", run.id)


def _claim(db: Database) -> LearnRun | None:
    with db.write() as s:
        run = s.scalar(sa.select(LearnRun).where(LearnRun.status == "queued")
                       .order_by(LearnRun.id))
        if run is None:
            return None
        run.status, run.started_at, run.heartbeat_at = "running", utcnow(), utcnow()
        run.pid, run.host, run.stage = os.getpid(), socket.gethostname(), "starting"
    return run


class _Reporter:
    """Writes a run's stage and progress to the database, at most every half second."""

    def __init__(self, db: Database, run: LearnRun, on_progress: Progress | None) -> None:
        self.db, self.run, self.on_progress = db, run, on_progress
        self._last = 0.0

    def __call__(self, stage: str, progress: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        with self.db.write() as s:
            row = s.get(LearnRun, self.run.id)
            assert row is not None
            row.stage, row.progress, row.heartbeat_at = stage, min(1.0, progress), utcnow()
        self.run.stage, self.run.progress = stage, progress
        if self.on_progress is not None:
            self.on_progress(self.run)


def _execute(settings: Settings, db: Database, run: LearnRun, on_progress: Progress | None
             ) -> None:
    from dialoop.learn.pipeline import consolidate_lines

    report = _Reporter(db, run, on_progress)
    status, error, result = "done", None, {}
    try:
        run_settings = load_settings(**{**settings.model_dump(), **run.settings})
        result = consolidate_lines(run_settings, db, run.id, report)
    except DialoopError as exc:
        status, error = "failed", str(exc)
    except Exception as exc:  # the run fails; the worker lives on and says why
        log.exception("consolidation run %s failed", run.id)
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    with db.write() as s:
        row = s.get(LearnRun, run.id)
        assert row is not None
        row.status, row.error, row.report = status, error, result
        row.finished_at, row.progress = utcnow(), 1.0
        row.stage = "finished" if status == "done" else "failed"
    if on_progress is not None:
        on_progress(get_run(db, run.id))


def busy(db: Database) -> bool:
    """Whether a run is waiting or running."""
    with db.read() as s:
        return s.scalar(sa.select(sa.func.count(LearnRun.id))
                        .where(LearnRun.status.in_(("queued", "running")))) > 0


def queued(db: Database) -> LearnRun | None:
    """The oldest run waiting for a worker, if any."""
    with db.read() as s:
        return s.scalar(sa.select(LearnRun).where(LearnRun.status == "queued")
                        .order_by(LearnRun.id))


def worker_running(home: Path) -> bool:
    """Whether a worker process holds the worker lock of ``home`` now."""
    with worker_lock(home) as mine:
        return not mine


@dataclass(frozen=True)
class Pending:
    """Feedback given since the last run started (or was queued, if it has not started):
    what the automatic trigger counts. A run reads the lessons when it starts, so what
    came before is in it."""

    lessons: int
    ratings: int

    @property
    def total(self) -> int:
        return self.lessons + self.ratings

    def to_dict(self) -> dict[str, int]:
        return {"lessons": self.lessons, "ratings": self.ratings}


def pending_feedback(db: Database) -> Pending:
    """Lessons taught and ratings given since the last run (see :class:`Pending`)."""
    with db.read() as s:
        since = s.scalar(sa.select(sa.func.max(LearnRun.started_at)))
        queued_at = s.scalar(sa.select(sa.func.max(LearnRun.created_at))
                             .where(LearnRun.started_at.is_(None)))
        if since is None or (queued_at is not None and queued_at > since):
            since = queued_at
        lessons = sa.select(sa.func.count(Lesson.id))
        ratings = sa.select(sa.func.count(Feedback.id)).where(Feedback.kind == "rating")
        if since is not None:
            lessons = lessons.where(Lesson.created_at > since)
            ratings = ratings.where(Feedback.created_at > since)
        return Pending(int(s.scalar(lessons) or 0), int(s.scalar(ratings) or 0))


def main() -> None:
    """``python -m dialoop.learn.worker``: work off the queue of DIALOOP_HOME, then exit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    done = work(load_settings())
    log.info("worker finished %d run(s)", len(done))


if __name__ == "__main__":
    main()
