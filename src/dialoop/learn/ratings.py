"""The ratings that teach: a line's bare thumbs up and down, as (question, answer, ±1).

A rating (:meth:`~dialoop.learn.feedback.FeedbackStore.rate`) judges one assistant turn;
its question is the user turn before it. Ratings train the line's *style* adapter
(:func:`dialoop.learn.kto.train_style`), which applies to every message of the line's
user, so only *bare* ratings count:

- a rating on a turn that also has a correction or a preference is left out: that turn
  teaches through its lesson (even once the lesson is forgotten: the user said what the
  answer should be, which is not a judgement of style);
- a turn rated more than once counts once, with its last rating;
- a turn whose session was deleted is gone, and so is its rating's example.

Ratings are personal: only a user's line (``user:<id>``) has them; the global line has
none. Reads only the database: no model, no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from dialoop.evidence import Scope
from dialoop.store import Database
from dialoop.store.models import Feedback, Turn

__all__ = ["HELD_OUT_EVERY", "Rated", "RatedQuestions", "rated_examples", "rated_lines",
           "split_held_out"]

_LESSON_KINDS = ("correction", "preference")
_CHUNK = 500  # ids per IN (…) query
HELD_OUT_EVERY = 4  # one rating in this many is kept from training, for the gate


@dataclass(frozen=True)
class Rated:
    """One rated answer: +1 (desirable) or -1 (undesirable)."""

    question: str
    answer: str
    rating: int
    turn_id: int | None = None
    feedback_id: int | None = None

    @property
    def desirable(self) -> bool:
        return self.rating > 0


def rated_examples(db: Database, line: str) -> list[Rated]:
    """The bare ratings of adapter line ``line``, oldest first (see the module's rules)."""
    scope = Scope.parse(line)
    if scope.user is None:
        return []
    with db.read() as s:
        latest = _latest_bare_ratings(s, scope.user)
        texts = _questions_and_answers(s, list(latest))
    return [Rated(q, a, latest[turn_id].rating or 0, turn_id, latest[turn_id].id)
            for turn_id, (q, a) in sorted(texts.items(), key=lambda kv: latest[kv[0]].id)
            if a.strip()]


def rated_lines(db: Database, min_ratings: int) -> dict[str, list[Rated]]:
    """Each user line with at least ``min_ratings`` bare ratings, with them."""
    with db.read() as s:
        users = sorted(set(s.scalars(sa.select(Feedback.user_id).where(
            Feedback.kind == "rating", Feedback.turn_id.is_not(None)))))
    lines = {line: rated_examples(db, line) for line in (str(Scope.of(u)) for u in users if u)}
    return {line: rated for line, rated in lines.items() if len(rated) >= min_ratings}


def split_held_out(rated: Sequence[Rated]) -> tuple[list[Rated], list[Rated]]:
    """(trained on, held out): every ``HELD_OUT_EVERY``-th rating, oldest first, is held
    out, so a new rating moves no old one from one side to the other."""
    held = [r for i, r in enumerate(rated) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return [r for i, r in enumerate(rated) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1], held


def _latest_bare_ratings(s: orm.Session, user: str) -> dict[int, Feedback]:
    """Turn id → the user's last rating of it, for turns without a lesson."""
    taught = set(s.scalars(sa.select(Feedback.turn_id).where(
        Feedback.kind.in_(_LESSON_KINDS), Feedback.turn_id.is_not(None))))
    latest: dict[int, Feedback] = {}
    for row in s.scalars(sa.select(Feedback).where(
            Feedback.kind == "rating", Feedback.user_id == user, Feedback.turn_id.is_not(None),
            Feedback.rating.in_((1, -1))).order_by(Feedback.id)):
        if row.turn_id not in taught:
            latest[row.turn_id] = row  # type: ignore[index]
    return latest


def _questions_and_answers(s: orm.Session, turn_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """Assistant turn id → (the user's question before it, the answer), for turns that exist."""
    answer, question = orm.aliased(Turn), orm.aliased(Turn)
    out: dict[int, tuple[str, str]] = {}
    for start in range(0, len(turn_ids), _CHUNK):
        rows = s.execute(
            sa.select(answer.id, question.content, answer.content)
            .join(question, sa.and_(question.session_id == answer.session_id,
                                    question.position == answer.position - 1,
                                    question.role == "user"))
            .where(answer.id.in_(turn_ids[start: start + _CHUNK]), answer.role == "assistant"))
        out.update({turn_id: (q, a) for turn_id, q, a in rows})
    return out


class RatedQuestions:
    """The style part's router: whether a message is close to a question its user rated
    (cosine of sentence vectors; the embedder's vectors are normalized). Used where the
    version serves (:meth:`~dialoop.learn.loop.LearningLoop.style_routes`) and where the
    gate judges it, so both route alike."""

    def __init__(self, embedder: Any, questions: Sequence[str]) -> None:
        self.embedder = embedder
        self.vectors = embedder.embed(list(questions))  # (n, dim)

    def near(self, message: str, similarity: float) -> bool:
        return float((self.vectors @ self.embedder.embed([message])[0]).max()) >= similarity

