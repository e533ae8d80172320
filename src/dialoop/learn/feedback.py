"""Feedback on answers: ratings, corrections and preferences, durable before acknowledged.

Every method checks everything first and then writes in one transaction: when it
returns, the feedback (and the lesson drawn from it) is committed; when it raises,
nothing was stored.

- **rating**: +1 or −1 on an assistant turn, with an optional reason.
- **correction**: the answer an assistant turn should have given (its question is the
  user turn before it), or a free-standing question/answer pair (``teach``).
- **preference**: a chosen and a rejected response to the same question.

A turn of another user is reported as not found, exactly like a turn that does not
exist: feedback never reveals what other users asked. Who may teach in which scope
is checked by the caller (:class:`~dialoop.learn.loop.LearningLoop`, with
:class:`~dialoop.store.accounts.Permissions`) before anything reaches this store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.evidence import Scope
from dialoop.learn.memory import MAX_ANSWER_CHARS, CorrectionMemory
from dialoop.store import Database
from dialoop.store.models import ChatSession, Feedback, Lesson, Turn

__all__ = ["FeedbackReceipt", "FeedbackStore"]

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 2_000

RatingListener = Callable[..., Any]
"""Told of each committed rating: ``listener(user=, session_id=, turn_id=, rating=)``
(the online policy learner, :mod:`dialoop.policy.online`)."""


@dataclass(frozen=True)
class FeedbackReceipt:
    """What was stored: the feedback row's id, and the lesson drawn from it (if any)."""

    feedback_id: int
    kind: str
    lesson_id: int | None = None
    superseded: tuple[int, ...] = ()  # lessons the new one replaced
    joined: bool = False  # the question joined an existing lesson (it had missed it)

    def to_dict(self) -> dict[str, Any]:
        row = {"feedback_id": self.feedback_id, "kind": self.kind,
               "lesson_id": self.lesson_id, "superseded": list(self.superseded)}
        return row | ({"joined": True} if self.joined else {})


@dataclass(frozen=True)
class _TurnFacts:
    turn_id: int
    session_id: str
    question: str
    answer: str
    adapter: str | None


class FeedbackStore:
    """Record feedback; corrections and preferences become lessons in ``memory``."""

    def __init__(self, db: Database, memory: CorrectionMemory) -> None:
        self.db = db
        self.memory = memory
        self.rating_listeners: list[RatingListener] = []

    def rate(
        self, turn_id: int, rating: int, *, user: str, reason: str | None = None
    ) -> FeedbackReceipt:
        """+1 (good) or −1 (bad) on an assistant turn of ``user``'s."""
        if isinstance(rating, bool) or rating not in (1, -1):
            raise InvalidInputError(f"A rating is +1 (good) or -1 (bad), not {rating!r}.")
        reason = _optional_text(reason, "reason", MAX_REASON_CHARS)
        with self.db.write() as s:
            facts = _turn(s, turn_id, user)
            row = Feedback(kind="rating", user_id=user, session_id=facts.session_id,
                           turn_id=turn_id, scope=str(Scope.of(user)), rating=rating, reason=reason,
                           adapter=facts.adapter)
            s.add(row)
        for listener in self.rating_listeners:  # after the commit: the rating is stored
            try:
                listener(user=user, session_id=facts.session_id, turn_id=turn_id, rating=rating)
            except Exception:  # a listener's failure never loses or fails the rating
                log.exception("a rating listener failed on turn %d", turn_id)
        return FeedbackReceipt(row.id, "rating")

    def correct(
        self, turn_id: int, answer: str, *, user: str, scope: Scope
    ) -> FeedbackReceipt:
        """The answer an assistant turn of ``user``'s should have given."""
        with self.db.read() as s:
            question = _turn(s, turn_id, user).question
        prepared = self.memory.prepare(question, answer)  # validates; embeds outside the lock
        with self.db.write() as s:
            facts = _turn(s, turn_id, user)  # again, inside the transaction
            return self._lesson(s, "correction", user, scope, facts.question, answer, prepared,
                                facts=facts)

    def asked(self, turn_id: int, *, user: str) -> tuple[str, dict[str, Any] | None]:
        """The question assistant turn ``turn_id`` of ``user``'s answered, and what its trace
        says the knowledge graph did (``DialogueTrace.knowledge``; None if not asked)."""
        with self.db.read() as s:
            question = _turn(s, turn_id, user).question
            trace = s.scalar(sa.select(Turn.trace).where(Turn.id == turn_id)) or {}
        knowledge = (trace.get("dialogue") or {}).get("knowledge")
        return question, knowledge if isinstance(knowledge, dict) else None

    def teach(
        self, question: str, answer: str, *, user: str, scope: Scope
    ) -> FeedbackReceipt:
        """A free-standing lesson: ``question`` should be answered with ``answer``."""
        prepared = self.memory.prepare(question, answer)
        with self.db.write() as s:
            return self._lesson(s, "correction", user, scope, question, answer, prepared)

    def prefer(
        self, chosen: str, rejected: str, *, user: str, question: str | None = None,
        turn_id: int | None = None, scope: Scope,
    ) -> FeedbackReceipt:
        """``chosen`` is a better response than ``rejected`` to ``question`` (or to the
        question of assistant turn ``turn_id``, whose answer ``rejected`` defaults to)."""
        if (question is None) == (turn_id is None):
            raise InvalidInputError("Give either the question or the turn the preference is on.")
        facts = None
        if turn_id is not None:
            with self.db.read() as s:
                facts = _turn(s, turn_id, user)
            question = facts.question
        rejected_text = _optional_text(rejected, "rejected response", MAX_ANSWER_CHARS)
        if rejected_text is None:
            raise InvalidInputError("The rejected response is empty.")
        assert question is not None
        prepared = self.memory.prepare(question, chosen)
        if chosen.strip() == rejected_text:
            raise InvalidInputError("The chosen and rejected responses are the same.")
        with self.db.write() as s:
            if turn_id is not None:
                facts = _turn(s, turn_id, user)
            return self._lesson(s, "preference", user, scope, question, chosen, prepared,
                                facts=facts, rejected=rejected_text)

    def satisfaction(self) -> dict[str, dict[str, float | int]]:
        """Per adapter version ("base" for none): ratings and the share that were positive."""
        query = (sa.select(Feedback.adapter, Feedback.rating, sa.func.count())
                 .where(Feedback.kind == "rating").group_by(Feedback.adapter, Feedback.rating))
        table: dict[str, dict[str, float | int]] = {}
        with self.db.read() as s:
            for adapter, rating, n in s.execute(query):
                row = table.setdefault(adapter or "base", {"good": 0, "bad": 0})
                row["good" if rating > 0 else "bad"] += n
        for row in table.values():
            row["ratings"] = row["good"] + row["bad"]
            row["satisfaction"] = round(row["good"] / row["ratings"], 4)
        return table

    def _lesson(
        self, s: Any, kind: str, user: str, scope: Scope, question: str, answer: str,
        prepared: tuple[bytes, list[str]], *, facts: _TurnFacts | None = None,
        rejected: str | None = None,
    ) -> FeedbackReceipt:
        row = Feedback(
            kind=kind, user_id=user, scope=str(scope), question=question.strip(),
            answer=answer.strip(), rejected=rejected,
            session_id=facts.session_id if facts else None,
            turn_id=facts.turn_id if facts else None, adapter=facts.adapter if facts else None,
        )
        s.add(row)
        s.flush()
        if kind == "correction" and (old := self.memory.missed(s, question, answer,
                                                               scope=scope)) is not None:
            # Said again about a question its lesson missed: the wording joins that lesson.
            self.memory.add_wording(s, old, question, feedback_id=row.id)
            row.lesson_id = old.id
            return FeedbackReceipt(row.id, kind, old.id, joined=True)
        lesson = self.memory.add(
            s, kind=kind, user=user, scope=scope, question=question, answer=answer,
            prepared=prepared, rejected=rejected, feedback_id=row.id,
        )
        row.lesson_id = lesson.id
        replaced = tuple(s.scalars(sa.select(Lesson.id).where(Lesson.superseded_by == lesson.id)))
        return FeedbackReceipt(row.id, kind, lesson.id, replaced)


def _turn(s: Any, turn_id: int, user: str) -> _TurnFacts:
    """An assistant turn of ``user``'s with the question it answered; otherwise not found."""
    if isinstance(turn_id, bool) or not isinstance(turn_id, int):
        raise InvalidInputError(f"A turn id is a whole number, not {turn_id!r}.")
    row = s.execute(
        sa.select(Turn, ChatSession.user_id).join(ChatSession, Turn.session_id == ChatSession.id)
        .where(Turn.id == turn_id)
    ).first()
    if row is None or row[1] != user:  # another user's turn looks exactly like no turn
        raise NotFoundError(f"No turn {turn_id} in your sessions: /history shows turn ids.")
    turn = row[0]
    if turn.role != "assistant":
        raise InvalidInputError(
            f"Turn {turn_id} is your own message; give feedback on the assistant's answer."
        )
    question = s.scalar(sa.select(Turn.content).where(
        Turn.session_id == turn.session_id, Turn.position == turn.position - 1,
        Turn.role == "user"))
    if question is None:
        raise InvalidInputError(f"Turn {turn_id} answers no question of yours.")
    return _TurnFacts(turn.id, turn.session_id, question, turn.content, turn.adapter)


def _optional_text(text: str | None, what: str, limit: int) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidInputError(f"The {what} must be text.")
    text = text.strip()
    if len(text) > limit:
        raise InvalidInputError(f"The {what} has {len(text):,} characters; the limit is {limit:,}.")
    return text or None
