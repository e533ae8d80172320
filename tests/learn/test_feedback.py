"""Invalid feedback is refused with a clear error and stores nothing."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa

from dialoop.config import Settings
from dialoop.dialogue.session import Sessions
from dialoop.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from dialoop.learn.feedback import FeedbackStore
from dialoop.learn.memory import CorrectionMemory
from dialoop.store import Database, open_database
from dialoop.store.models import Feedback, Lesson


class HashEmbedder:
    """Deterministic stand-in vectors: these tests are about validation, not retrieval."""

    name, dim = "hash", 8

    def embed(self, texts):  # type: ignore[no-untyped-def]
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts]
        return np.array([r / np.linalg.norm(r) for r in rows], dtype=np.float32)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    db = open_database(settings.resolved_database_url)
    yield db
    db.close()


@pytest.fixture
def store(db: Database) -> FeedbackStore:
    return FeedbackStore(db, CorrectionMemory(db, HashEmbedder()))


def _answered_turn(db: Database, user: str) -> int:
    sessions = Sessions(db)
    session = sessions.create(user)
    sessions.add_turn(session, "user", "What is the capital of Veltria?")
    return sessions.add_turn(session, "assistant", "Paris.").id


def _count(db: Database) -> tuple[int, int]:
    with db.read() as s:
        return (s.scalar(sa.select(sa.func.count(Feedback.id))),
                s.scalar(sa.select(sa.func.count(Lesson.id))))


def test_invalid_feedback_stores_nothing(db: Database, store: FeedbackStore) -> None:
    mine = _answered_turn(db, "ann")
    theirs = _answered_turn(db, "bob")
    with pytest.raises(InvalidInputError, match="rating"):
        store.rate(mine, 7, user="ann")
    with pytest.raises(NotFoundError, match="No turn 999"):
        store.rate(999, 1, user="ann")
    with pytest.raises(NotFoundError) as other:  # exactly like a turn that does not exist
        store.correct(theirs, "Karmoss", user="ann")
    assert str(other.value) == f"No turn {theirs} in your sessions: /history shows turn ids."
    with pytest.raises(InvalidInputError, match="empty"):
        store.correct(mine, "   ", user="ann")
    with pytest.raises(InvalidInputError, match="your own message"):
        store.rate(mine - 1, 1, user="ann")
    with pytest.raises(PermissionDeniedError):
        store.teach("Q?", "A", user="ann", scope="global")
    with pytest.raises(InvalidInputError, match="scope"):
        store.teach("Q?", "A", user="ann", scope="everyone")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="same"):
        store.prefer("Karmoss", "Karmoss", user="ann", turn_id=mine)
    assert _count(db) == (0, 0)


def test_valid_feedback_is_committed_when_acknowledged(db: Database, store: FeedbackStore
                                                       ) -> None:
    turn = _answered_turn(db, "ann")
    store.rate(turn, 1, user="ann")
    receipt = store.correct(turn, "Karmoss", user="ann")
    pref = store.prefer("Karmoss is the capital.", "Paris.", user="ann", turn_id=turn)
    assert _count(db) == (3, 2)
    db.close()  # a new connection (as after a crash) sees everything acknowledged
    again = open_database(str(db.url))
    try:
        with again.read() as s:
            lesson = s.get(Lesson, receipt.lesson_id)
            assert (lesson.question, lesson.answer, lesson.user_id, lesson.scope) == (
                "What is the capital of Veltria?", "Karmoss", "ann", "user")
            assert s.get(Lesson, pref.lesson_id).rejected == "Paris."
    finally:
        again.close()
