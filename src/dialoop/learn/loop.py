"""The learning loop as one composition: memory, feedback, adapters and consolidation runs.

The server, the CLI and the Python API call it directly (it is one of the parts
:func:`~dialoop.assistant.open_assistant` composes). In a turn, the dialogue manager
asks it two things through narrow seams: which lessons apply to a message
(:meth:`LearningLoop.recall`) and which adapter version answers a user
(:meth:`LearningLoop.adapter_for`). Who may do what is asked of
:class:`~dialoop.store.accounts.Permissions`, the one check shared with the server.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from datetime import timedelta
from typing import Any, Protocol

from dialoop.config import Settings
from dialoop.engine.adapters import PART_SEP, stack_key, stack_parts, version_of
from dialoop.engine.embedding import Embedder
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.evidence import Recall, Scope
from dialoop.learn import worker
from dialoop.learn.feedback import FeedbackReceipt, FeedbackStore
from dialoop.learn.memory import CorrectionMemory
from dialoop.learn.ratings import RatedQuestions
from dialoop.store import Database
from dialoop.store.accounts import Permissions
from dialoop.store.adapters import STYLE, AdapterStore
from dialoop.store.models import AdapterVersion, LearnRun, Lesson, utcnow

__all__ = ["FactStore", "LearningLoop", "run_to_dict", "satisfaction_per_version"]

log = logging.getLogger(__name__)

QUEUE_GRACE = timedelta(seconds=15)  # a queued run this young may have a worker starting


class FactStore(Protocol):
    """Where a lesson that states a plain fact keeps it (the knowledge base)."""

    def learn_correction(self, text: str, *, user: str, scope: Scope, lesson_id: int
                         ) -> object: ...

    def forget(self, *, scope: Scope, lesson_id: int | None = None) -> int: ...

    def learn_alias(self, question: str, correction: str, *, user: str, scope: Scope,
                    lesson_id: int | None = None, knowledge: dict[str, Any] | None = None
                    ) -> Any: ...

    def move_aliases(self, *, scope: Scope, lesson_id: int, to_scope: Scope,
                     to_lesson_id: int) -> int: ...


class LearningLoop:
    """Feedback in, lessons applied, adapters trained, judged and served."""

    def __init__(
        self, *, settings: Settings, db: Database, adapters: AdapterStore, embedder: Embedder,
        permissions: Permissions, facts: FactStore | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.adapters = adapters
        self.facts = facts
        self.permissions = permissions
        self.memory = CorrectionMemory(
            db, embedder,
            match_similarity=settings.learn_match_similarity,
            supersede_similarity=settings.learn_supersede_similarity,
        )
        self.feedback = FeedbackStore(db, self.memory)
        self._trigger_lock = threading.Lock()
        self._worker: subprocess.Popen[bytes] | None = None  # the last one this process started
        self._style_routers: dict[str, RatedQuestions] = {}  # version key -> its router

    # -- in a turn ----------------------------------------------------------------------

    def serving(self, user: str) -> AdapterVersion | None:
        """The adapter version serving ``user``: their personal line's, else the global
        line's, else None (the base model)."""
        heads = self.adapters.heads()
        for line in _lines_of(user):
            if heads.get(line) is not None:
                return self.adapters.get(line, heads[line])  # type: ignore[arg-type]
        return None

    def adapter_for(self, user: str, message: str) -> str | None:
        """The adapter version to answer ``message`` with (the dialogue manager's
        ``AdapterChooser``): the serving version, if the message is within its scope.

        A version trained on lessons is *scoped*: its router sends it only messages that
        match one of its lessons that is still active (the correction memory's rule, at
        ``learn_route_similarity``), and everything else to the base model, untouched.
        A forgotten lesson stops routing at once. A version without a router (one from
        ``dialoop train sft``) answers everything.

        A version's style part (trained on its user's ratings) has its own router: it
        answers messages like the ones its user rated (:meth:`style_routes`), stacked with
        the lessons part where that router sends the message too
        (``user:ann@v3+user:ann@v3#style``; ``user:ann@v3#style`` alone otherwise).
        """
        row = self.serving(user)
        if row is None:
            return None
        parts = [row.key] if self.routes(row, message, user=user) else []
        if self.adapters.has_style(row) and self.style_routes(row, message):
            parts.append(f"{row.key}{PART_SEP}{STYLE}")
        return stack_key(parts) if parts else None

    def style_routes(self, row: AdapterVersion, message: str) -> bool:
        """Whether version ``row``'s style part answers ``message``: the message is at least
        ``learn_style_route_similarity`` close to a question its user rated (the questions
        the version was trained on, stored with it). Without them, it answers everything."""
        questions = row.meta.get("style_router")
        if questions is None:
            return True
        if not questions:
            return False
        router = self._style_routers.get(row.key)
        if router is None:
            router = RatedQuestions(self.memory.embedder, questions)
            if len(self._style_routers) >= 16:  # old versions: forget them
                self._style_routers.clear()
            self._style_routers[row.key] = router
        return router.near(message, self.settings.learn_style_route_similarity)

    def routes(self, row: AdapterVersion, message: str, *, user: str) -> bool:
        """Whether adapter version ``row`` answers ``message`` of ``user`` (its router)."""
        lessons = row.meta.get("router")
        if lessons is None:
            return True
        return bool(self.memory.match(message, user=user, among=set(lessons),
                                      similarity=self.settings.learn_route_similarity))

    def recall(self, message: str, *, user: str) -> Recall:
        """The user's and global lessons that match ``message``, and whether the best one
        is sure enough to be the answer itself (``learn_memory_mode``: ``direct`` always,
        ``prompt`` never, ``auto`` at ``learn_direct_similarity`` or above). (The dialogue
        manager's ``Memory``.)"""
        matches = self.memory.match(message, user=user)
        mode = self.settings.learn_memory_mode
        sure = bool(matches) and (mode == "direct" or (
            mode == "auto" and matches[0].score >= self.settings.learn_direct_similarity))
        return Recall(matches, sure)

    # -- feedback -------------------------------------------------------------------------
    # ``scope`` is "user" (the caller's own, the default), "global", or a Scope.

    def teach(self, question: str, answer: str, *, user: str, scope: Scope | str = "user"
              ) -> FeedbackReceipt:
        """Teach that ``question`` is answered with ``answer``; applies from the next turn."""
        where = self._scope(scope, user, "teach")
        receipt = self.feedback.teach(question, answer, user=user, scope=where)
        self._facts_follow(receipt, answer, user, where)
        self._alias_follows(receipt, question, answer, user, where, None)
        self._maybe_trigger(user)
        return receipt

    def correct(self, turn_id: int, answer: str, *, user: str, scope: Scope | str = "user"
                ) -> FeedbackReceipt:
        """The answer assistant turn ``turn_id`` should have given."""
        where = self._scope(scope, user, "teach")
        receipt = self.feedback.correct(turn_id, answer, user=user, scope=where)
        self._facts_follow(receipt, answer, user, where)
        if self.facts is not None and self.settings.knowledge:
            question, knowledge = self.feedback.asked(turn_id, user=user)  # read just now
            self._alias_follows(receipt, question, answer, user, where, knowledge or {})
        self._maybe_trigger(user)
        return receipt

    def prefer(self, chosen: str, rejected: str, *, user: str, question: str | None = None,
               turn_id: int | None = None, scope: Scope | str = "user") -> FeedbackReceipt:
        """``chosen`` is better than ``rejected`` for ``question`` (or turn ``turn_id``'s)."""
        where = self._scope(scope, user, "teach")
        receipt = self.feedback.prefer(chosen, rejected, user=user, question=question,
                                       turn_id=turn_id, scope=where)
        self._maybe_trigger(user)
        return receipt

    def rate(self, turn_id: int, rating: int, *, user: str, reason: str | None = None
             ) -> FeedbackReceipt:
        """+1 (good) or -1 (bad) on assistant turn ``turn_id``."""
        receipt = self.feedback.rate(turn_id, rating, user=user, reason=reason)
        self._maybe_trigger(user)
        return receipt

    def forget(self, lesson_id: int, *, user: str) -> Lesson:
        """Stop applying a lesson now; the next consolidation leaves it out of the adapter."""
        lesson = self.memory.forget(lesson_id, user=user,
                                    is_admin=self.permissions.is_admin(user))
        if self.facts is not None:
            self.facts.forget(scope=Scope.parse(lesson.scope), lesson_id=lesson.id)
        return lesson

    def lessons(self, *, user: str, status: str | None = "active") -> list[Lesson]:
        """The user's lessons and the global ones (``status=None``: all, not only active)."""
        return self.memory.lessons(user=user, status=status)

    def promote_lesson(self, lesson_id: int, *, user: str) -> Lesson:
        """Make a user's lesson global (admins only)."""
        lesson = self.memory.promote(lesson_id, is_admin=self.permissions.is_admin(user))
        # A fact the user's lesson stated moves to the new global lesson, for everyone.
        if self.facts is not None:  # so do the relation aliases it taught
            self.facts.move_aliases(scope=Scope.of(lesson.user_id), lesson_id=lesson_id,
                                    to_scope=Scope.everyone(), to_lesson_id=lesson.id)
        if self.facts is not None and self.facts.forget(scope=Scope.of(lesson.user_id),
                                                        lesson_id=lesson_id):
            self.facts.learn_correction(lesson.answer, user=lesson.user_id,
                                        scope=Scope.everyone(), lesson_id=lesson.id)
        return lesson

    def _scope(self, scope: Scope | str, user: str, doing: str) -> Scope:
        """The scope the caller means, checked: a user's own, or (admins) everyone's."""
        where = scope if isinstance(scope, Scope) else Scope.named(scope, user)
        self.permissions.check_scope(user, where, doing)
        return where

    def _facts_follow(self, receipt: FeedbackReceipt, answer: str, user: str,
                      scope: Scope) -> None:
        """A correction that states a plain fact ("The price of X is 12 euros") also becomes
        a triple in the knowledge graph, scoped like its lesson and tied to it: exact and
        citable. Superseding or forgetting the lesson removes it."""
        if self.facts is None:
            return
        for old in receipt.superseded:
            self.facts.forget(scope=scope, lesson_id=old)
        if self.settings.knowledge and receipt.lesson_id is not None and not receipt.joined:
            self.facts.learn_correction(answer, user=user, scope=scope,
                                        lesson_id=receipt.lesson_id)

    def _alias_follows(self, receipt: FeedbackReceipt, question: str, answer: str, user: str,
                       scope: Scope, knowledge: dict[str, Any] | None) -> None:
        """A correction of a knowledge-graph answer may teach the words the graph missed:
        "What films does X appear in?" corrected with the films (or "no, I meant the films
        she starred in") makes "appear in" an alias of ``starred_actors``, scoped like the
        lesson and tied to it (forgetting the lesson forgets it). ``knowledge``: the
        corrected turn's knowledge trace ({} when the graph was not asked; None for a
        lesson taught without a turn). When the correction named the relation rather than
        the answer, the lesson answers with what the graph now says."""
        if self.facts is None or not self.settings.knowledge or receipt.lesson_id is None:
            return
        try:
            learned = self.facts.learn_alias(question, answer, user=user, scope=scope,
                                             lesson_id=receipt.lesson_id, knowledge=knowledge)
        except Exception:  # the lesson is stored; a failed alias never fails the correction
            log.exception("learning a relation alias from lesson %d failed", receipt.lesson_id)
            return
        if learned is None:
            return
        log.info("lesson %d taught %r as an alias of %s (%s)", receipt.lesson_id,
                 learned.phrase, learned.relation, learned.scope)
        if learned.clarification and not receipt.joined:
            self.memory.reword(receipt.lesson_id, learned.answer)

    # -- consolidation ----------------------------------------------------------------------

    def start_run(self, *, user: str, trigger: str = "manual",
                  options: dict[str, Any] | None = None, background: bool = True) -> LearnRun:
        """Queue a consolidation run; with ``background`` start a worker process for it.

        ``options`` override learn_* settings for this run (epochs, gate thresholds, …).
        """
        self._check_can_run(user)
        run = worker.enqueue(self.db, requested_by=user, trigger=trigger, options=options)
        if background:
            self._worker = worker.spawn(self.settings)
        return run

    def consolidate(self, *, user: str, options: dict[str, Any] | None = None,
                    on_progress: worker.Progress | None = None) -> LearnRun:
        """Run a consolidation now, in this process (waiting if another worker runs); the
        finished run's ``report`` says what was promoted or rejected and why."""
        run = self.start_run(user=user, options=options, background=False)
        while True:  # another worker may hold the lock; ours runs once it is free
            worker.work(self.settings, on_progress=on_progress)
            run = worker.get_run(self.db, run.id)
            if run.status not in ("queued", "running"):
                return run
            time.sleep(0.5)

    def run(self, run_id: int) -> LearnRun:
        return worker.get_run(self.db, run_id)

    def maybe_start_run(self, *, idle_for: float | None = None, user: str | None = None
                        ) -> LearnRun | None:
        """Queue a consolidation run and start a worker for it, if it is time: the one place
        that decides when a run starts by itself. Return the run queued, or None.

        It is time when no run is queued or running and, of the lessons and ratings given
        since the last run (:func:`~dialoop.learn.worker.pending_feedback`), there are
        ``learn_auto_after`` or more, or there are some and the caller has been idle for
        ``learn_auto_idle_seconds`` (``idle_for``: seconds since a server last answered;
        None where nobody measures it). A run still queued with no worker alive gets one.
        Whether automatic runs are on at all is the caller's to say (``learn_auto``).
        """
        with self._trigger_lock:
            if self._worker is not None and self._worker.poll() is not None:
                self._worker = None  # it finished (and is reaped)
            if worker.busy(self.db):
                self._keep_queue_moving()
                return None
            pending = worker.pending_feedback(self.db)
            reason = _auto_reason(pending, self.settings, idle_for)
            if reason is None:
                return None
            run = worker.enqueue(self.db, requested_by=user or "auto", trigger=reason)
            log.info("queued consolidation run %d (%s): %d new lessons and %d ratings since "
                     "the last run%s", run.id, reason, pending.lessons, pending.ratings,
                     f", idle {idle_for:.0f} s" if reason == "idle" and idle_for else "")
            self._worker = worker.spawn(self.settings)
            return run

    def _keep_queue_moving(self) -> None:
        """A queued run whose worker exited just before it came (or died) gets a new one."""
        if self._worker is not None:
            return  # ours is still starting up, or working
        waiting = worker.queued(self.db)
        if (waiting is None or utcnow() - waiting.created_at < QUEUE_GRACE
                or worker.worker_running(self.settings.home)):
            return  # (a run queued just now may have a worker on its way)
        log.info("run %d is queued and no worker is running: starting one", waiting.id)
        self._worker = worker.spawn(self.settings)

    def rollback(self, line: str, version: int | None, *, user: str) -> AdapterVersion | None:
        """Serve an earlier promoted version of ``line`` again, or none (the base model)."""
        self._check_line_rights(line, user)
        return self.adapters.rollback(line, version)

    def promote(self, line: str, version: int, *, user: str) -> AdapterVersion:
        """Serve a candidate version that has not failed the gate (a manual decision; admins,
        or a user for their own line)."""
        self._check_line_rights(line, user)
        return self.adapters.promote(line, version)

    # -- reading ------------------------------------------------------------------------------

    def status(self, *, user: str) -> dict[str, Any]:
        """Lessons, the adapters serving this user, the last run and satisfaction."""
        mine = self.memory.lessons(user=user, status=None)
        heads = self.adapters.heads()
        runs = worker.latest_runs(self.db, limit=1)
        row = self.serving(user)
        trained: set[int] = set()
        for line in _lines_of(user):
            head = self.adapters.active(line)
            if head is not None:
                trained |= set(head.meta.get("lessons", []))
        active = [x for x in mine if x.status == "active"]
        return {
            "user": user,
            "lessons": {
                "active": len(active),
                "pending": sum(1 for x in active if x.id not in trained),
                "in_adapter": sum(1 for x in active if x.id in trained),
                "superseded": sum(1 for x in mine if x.status == "superseded"),
                "forgotten": sum(1 for x in mine if x.status == "forgotten"),
            },
            "adapter": row.key if row is not None else None,
            "heads": {k: v for k, v in heads.items()
                      if k in _lines_of(user) or self.permissions.is_admin(user)},
            "last_run": run_to_dict(runs[0]) if runs else None,
            "since_last_run": worker.pending_feedback(self.db).to_dict(),
            "satisfaction": satisfaction_per_version(self.feedback.satisfaction()),
        }

    def history(self, *, user: str, line: str | None = None) -> list[dict[str, Any]]:
        """Adapter versions of the lines this user may see, oldest first."""
        heads = self.adapters.heads()
        rows = [r for r in self.adapters.history(line)
                if r.name in _lines_of(user) or self.permissions.is_admin(user)]
        sat = satisfaction_per_version(self.feedback.satisfaction())
        return [{
            "line": r.name, "version": r.version, "key": r.key, "status": r.status,
            "serving": heads.get(r.name) == r.version, "source": r.source,
            "created_at": r.created_at.isoformat(),
            "lessons": len(r.meta.get("lessons", [])),
            "ratings": len(r.meta.get("ratings", [])),
            "style": self.adapters.has_style(r),
            "gate": (r.report or {}).get("gate", {}),
            "satisfaction": sat.get(r.key, {}).get("satisfaction"),
        } for r in rows]

    # -- internals ------------------------------------------------------------------------------

    def _maybe_trigger(self, user: str) -> None:
        """After feedback: start a run if ``learn_auto`` is on here (a server polls instead,
        see :meth:`maybe_start_run`)."""
        if self.settings.learn_auto:
            self.maybe_start_run(user=user)

    def _check_can_run(self, user: str) -> None:
        if not self.permissions.is_admin(user) and not self.memory.lessons(user=user):
            raise InvalidInputError("You have no active lessons to consolidate.")

    def _check_line_rights(self, line: str, user: str) -> None:
        if line == str(Scope.of(user)) or self.permissions.is_admin(user):
            return
        if line == str(Scope.everyone()):
            self.permissions.require_admin(user, "change what serves everyone (the global "
                                                 "adapter)")
        raise NotFoundError(f"No adapter line {line!r} of yours: `dialoop learn history`.")


def satisfaction_per_version(table: dict[str, dict[str, float | int]]
                             ) -> dict[str, dict[str, float | int]]:
    """Satisfaction per adapter *stack* (as turns record it: ``user:ann@v3#style``,
    ``user:ann@v3+user:ann@v3#style``) summed per version (``user:ann@v3``) it used;
    ``base`` stays as it is."""
    out: dict[str, dict[str, float | int]] = {}
    for key, row in table.items():
        versions = {key} if key == "base" else {version_of(p) for p in stack_parts(key)}
        for version in versions:
            into = out.setdefault(version, {"good": 0, "bad": 0})
            into["good"] += row["good"]
            into["bad"] += row["bad"]
    for row in out.values():
        row["ratings"] = row["good"] + row["bad"]
        row["satisfaction"] = round(row["good"] / row["ratings"], 4)
    return out


def _auto_reason(pending: worker.Pending, settings: Settings, idle_for: float | None
                 ) -> str | None:
    """Why a run should start now ("threshold" or "idle"), or None."""
    if pending.total == 0:
        return None
    if settings.learn_auto_after and pending.total >= settings.learn_auto_after:
        return "threshold"
    idle = settings.learn_auto_idle_seconds
    if idle and idle_for is not None and idle_for >= idle:
        return "idle"
    return None


def _lines_of(user: str) -> tuple[str, str]:
    """The adapter lines that may answer ``user``, most specific first."""
    return str(Scope.of(user)), str(Scope.everyone())


def run_to_dict(run: LearnRun) -> dict[str, Any]:
    return {
        "id": run.id, "status": run.status, "trigger": run.trigger,
        "requested_by": run.requested_by, "stage": run.stage,
        "progress": round(run.progress, 3),
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error": run.error, "report": run.report,
    }
