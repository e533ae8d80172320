"""Invalid feedback is refused with a clear error and stores nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dialoop.assistant import Parts, open_parts
from dialoop.config import Settings
from dialoop.dialogue.session import Sessions
from dialoop.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from dialoop.learn.loop import LearningLoop
from dialoop.store import Database, open_database
from dialoop.store.models import Feedback, Lesson
from tests.fakes import HashEmbedder


@pytest.fixture
def parts(settings: Settings) -> Iterator[Parts]:
    parts = open_parts(settings, embedder=HashEmbedder())
    yield parts
    parts.close()


@pytest.fixture
def db(parts: Parts) -> Database:
    return parts.db


@pytest.fixture
def store(parts: Parts) -> LearningLoop:
    return parts.learning


def _answered_turn(db: Database, user: str) -> int:
    sessions = Sessions(db)
    session = sessions.create(user)
    sessions.add_turn(session, "user", "What is the capital of Veltria?")
    return sessions.add_turn(session, "assistant", "Paris.").id


def _count(db: Database) -> tuple[int, int]:
    with db.read() as s:
        return (s.scalar(sa.select(sa.func.count(Feedback.id))),
                s.scalar(sa.select(sa.func.count(Lesson.id))))


def test_invalid_feedback_stores_nothing(db: Database, store: LearningLoop) -> None:
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
        store.teach("Q?", "A", user="ann", scope="everyone")
    with pytest.raises(InvalidInputError, match="same"):
        store.prefer("Karmoss", "Karmoss", user="ann", turn_id=mine)
    assert _count(db) == (0, 0)


def test_valid_feedback_is_committed_when_acknowledged(db: Database, store: LearningLoop
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
                "What is the capital of Veltria?", "Karmoss", "ann", "user:ann")
            assert s.get(Lesson, pref.lesson_id).rejected == "Paris."
    finally:
        again.close()
