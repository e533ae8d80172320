"""The native API, part two: feedback, lessons and the learning loop.

Every call acts as the caller and goes to the learning loop
(:class:`~dialoop.learn.loop.LearningLoop`); ownership and scope rules (whose turn,
whose lesson, who may teach everyone, promote or roll back) are its own, checked by
the same :class:`~dialoop.store.accounts.Permissions` the CLI uses, and its errors
come back with their HTTP status. The HTTP layer adds no rule of its own.

While the server runs, :class:`AutoLearner` asks the learning loop every few seconds
whether a consolidation run should start (enough new lessons and ratings, or the server
idle with some waiting); the loop decides, queues the run and starts the one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, BeforeValidator, Field

from dialoop.errors import DialoopError
from dialoop.evidence import Scope
from dialoop.learn.loop import LearningLoop, run_to_dict
from dialoop.serve.auth import CallerDep
from dialoop.serve.httperrors import ErrorResponse, storable_text
from dialoop.store import Database
from dialoop.store.models import MAX_ID, LearnRun

__all__ = ["POLL_SECONDS", "AutoLearner", "install"]

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0  # how often the server asks whether a consolidation run should start

_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "Invalid feedback, not yours, or not "
            "allowed."},
}
router = APIRouter(prefix="/api", responses=_ERRORS)
ScopeWord = Literal["user", "global"]  # the caller's own, or everyone's (admins)
_STORABLE = BeforeValidator(storable_text)  # a lone surrogate: 400 before writing, not 500
Text = Annotated[str, Field(min_length=1, max_length=100_000), _STORABLE]
MaybeText = Annotated[str, Field(max_length=100_000), _STORABLE]
Reason = Annotated[str, Field(max_length=2_000), _STORABLE]
TurnId = Annotated[int, Path(ge=1, le=MAX_ID, description="An answer's turn id.")]
LessonId = Annotated[int, Path(ge=1, le=MAX_ID, description="A lesson's id.")]


class RatingIn(BaseModel):
    value: Literal[1, -1] = Field(description="+1 good, -1 bad.")
    reason: Reason | None = None


class CorrectionIn(BaseModel):
    answer: Text
    scope: ScopeWord = "user"


class LessonIn(BaseModel):
    question: Text
    answer: Text
    scope: ScopeWord = "user"


class PreferenceIn(BaseModel):
    chosen: Text
    rejected: Text
    question: MaybeText | None = None
    turn_id: int | None = Field(None, ge=1, le=MAX_ID)
    scope: ScopeWord = "user"


class RollbackIn(BaseModel):
    line: Annotated[str, Field(min_length=1, max_length=200), _STORABLE] = "global"
    version: int | None = Field(None, ge=1, le=MAX_ID, description="null: serve the base model.")


class ReceiptOut(BaseModel):
    feedback_id: int
    kind: str
    lesson_id: int | None
    superseded: list[int]


class LessonOut(BaseModel):
    id: int
    kind: str
    user: str
    scope: str
    question: str
    answer: str
    rejected: str | None
    status: str
    created_at: str


def _learning(request: Request) -> LearningLoop:
    return request.app.state.parts.learning  # type: ignore[no-any-return]


def _lesson(lesson: Any) -> dict[str, Any]:
    return {"id": lesson.id, "kind": lesson.kind, "user": lesson.user_id, "scope": lesson.scope,
            "question": lesson.question, "answer": lesson.answer, "rejected": lesson.rejected,
            "status": lesson.status, "created_at": lesson.created_at.isoformat()}


# -- feedback ---------------------------------------------------------------------------------

@router.post("/turns/{turn_id}/rating", response_model=ReceiptOut, tags=["feedback"],
             summary="Rate one of your answers")
async def rate(request: Request, caller: CallerDep, turn_id: TurnId, body: RatingIn) -> Any:
    receipt = await run_in_threadpool(_learning(request).rate, turn_id, body.value,
                                      user=caller.user, reason=body.reason)
    return receipt.to_dict()


@router.post("/turns/{turn_id}/correction", response_model=ReceiptOut, tags=["feedback"],
             summary="Give the answer one of your turns should have given")
async def correct(request: Request, caller: CallerDep, turn_id: TurnId,
                  body: CorrectionIn) -> Any:
    receipt = await run_in_threadpool(_learning(request).correct, turn_id, body.answer,
                                      user=caller.user, scope=body.scope)
    return receipt.to_dict()


@router.post("/preferences", response_model=ReceiptOut, tags=["feedback"],
             summary="Say which of two answers is better")
async def prefer(request: Request, caller: CallerDep, body: PreferenceIn) -> Any:
    receipt = await run_in_threadpool(
        _learning(request).prefer, body.chosen, body.rejected, question=body.question,
        turn_id=body.turn_id, user=caller.user, scope=body.scope)
    return receipt.to_dict()


# -- lessons ------------------------------------------------------------------------------------

@router.get("/lessons", response_model=list[LessonOut], tags=["lessons"],
            summary="Your lessons and the global ones")
async def lessons(request: Request, caller: CallerDep,
                  status: Annotated[Literal["active", "all"], Query()] = "active") -> Any:
    found = await run_in_threadpool(_learning(request).lessons, user=caller.user,
                                    status=None if status == "all" else status)
    return [_lesson(x) for x in found]


@router.post("/lessons", response_model=ReceiptOut, tags=["lessons"],
             summary="Teach a question and the answer it should get")
async def teach(request: Request, caller: CallerDep, body: LessonIn) -> Any:
    receipt = await run_in_threadpool(_learning(request).teach, body.question, body.answer,
                                      user=caller.user, scope=body.scope)
    return receipt.to_dict()


@router.post("/lessons/{lesson_id}/promote", response_model=LessonOut, tags=["lessons"],
             summary="Make a lesson apply to everyone (admin)")
async def promote_lesson(request: Request, caller: CallerDep, lesson_id: LessonId) -> Any:
    return _lesson(await run_in_threadpool(_learning(request).promote_lesson, lesson_id,
                                           user=caller.user))


@router.delete("/lessons/{lesson_id}", response_model=LessonOut, tags=["lessons"],
               summary="Forget a lesson: it stops applying now")
async def forget(request: Request, caller: CallerDep, lesson_id: LessonId) -> Any:
    return _lesson(await run_in_threadpool(_learning(request).forget, lesson_id,
                                           user=caller.user))


# -- learning ------------------------------------------------------------------------------------

@router.get("/learning/status", tags=["learning"],
            summary="Lessons, the adapter serving you, the last run, satisfaction")
async def status(request: Request, caller: CallerDep) -> dict[str, Any]:
    info = await run_in_threadpool(_learning(request).status, user=caller.user)
    return {**info, "auto": request.app.state.auto_learn.describe()}


@router.post("/learning/run", tags=["learning"], status_code=202,
             summary="Queue a consolidation run (trains, gates, promotes in the background)")
async def run(request: Request, caller: CallerDep) -> dict[str, Any]:
    return run_to_dict(await run_in_threadpool(_learning(request).start_run, user=caller.user,
                                               trigger="api"))


@router.get("/learning/history", tags=["learning"],
            summary="Adapter versions with their gate metrics and satisfaction")
async def history(request: Request, caller: CallerDep, line: str | None = None
                  ) -> list[dict[str, Any]]:
    return await run_in_threadpool(_learning(request).history, user=caller.user, line=line)


@router.post("/learning/rollback", tags=["learning"],
             summary="Serve an earlier version of an adapter line again, or none")
async def rollback(request: Request, caller: CallerDep, body: RollbackIn) -> dict[str, Any]:
    row = await run_in_threadpool(_learning(request).rollback, body.line, body.version,
                                  user=caller.user)
    return {"line": body.line, "serving": row.key if row is not None else None}


class _LessonCounts(Collector):
    """``dialoop_lessons{scope,status}``: how many lessons there are, read at each scrape."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterable[Metric]:
        import sqlalchemy as sa

        from dialoop.store.models import Lesson  # only in builds with the learning loop

        family = GaugeMetricFamily("dialoop_lessons", "Lessons by scope (global or user) "
                                   "and status.", labels=["scope", "status"])
        with self._db.read() as s:
            rows = s.execute(sa.select(Lesson.scope, Lesson.status, sa.func.count())
                             .group_by(Lesson.scope, Lesson.status)).all()
        counts: Counter[tuple[str, str]] = Counter()
        for scope, state, n in rows:  # one series per kind of scope, not one per user
            counts[(Scope.parse(scope).word, state)] += n
        for (word, state), n in sorted(counts.items()):
            family.add_metric([word, state], n)
        yield family


class AutoLearner:
    """The server's background task that starts consolidation runs by itself.

    Every ``poll`` seconds it calls :meth:`LearningLoop.maybe_start_run` (the one place
    that decides) with how long the server has been idle. It runs unless the
    ``learn_auto`` setting is false; :meth:`start` and :meth:`stop` are called by the
    app's lifespan. A worker it started finishes its run after the server stops.
    """

    def __init__(self, learning: LearningLoop, idle_seconds: Callable[[], float], *,
                 poll: float = POLL_SECONDS) -> None:
        self.learning = learning
        self.idle_seconds = idle_seconds
        self.poll = poll
        self.on = learning.settings.learn_auto is not False
        self._task: asyncio.Task[None] | None = None

    def describe(self) -> dict[str, Any]:
        s = self.learning.settings
        return {"on": self.on, "after": s.learn_auto_after,
                "idle_seconds": s.learn_auto_idle_seconds}

    def start(self) -> None:
        if not self.on or self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="dialoop-auto-learn")
        s = self.learning.settings
        log.info("consolidating by itself after %d new lessons or ratings, or %.0f s idle",
                 s.learn_auto_after, s.learn_auto_idle_seconds)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def check(self) -> LearnRun | None:
        """Ask once; the run queued, if one was."""
        return await run_in_threadpool(self.learning.maybe_start_run,
                                       idle_for=self.idle_seconds())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self.check()
            except DialoopError as exc:  # a locked database, say: try again next time
                log.warning("could not check for a consolidation run: %s", exc)
            except Exception:  # the server keeps serving whatever happens here
                log.exception("could not check for a consolidation run")


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.state.features.update(feedback=True, learning=True)
    app.state.metrics.register(_LessonCounts(app.state.parts.db))
    app.state.auto_learn = AutoLearner(app.state.parts.learning,
                                       app.state.scheduler.idle_seconds)
