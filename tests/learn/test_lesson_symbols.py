"""A lesson whose question is only symbols is refused, and never matches anything."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import sqlalchemy as sa

from dialoop.assistant import Parts, open_parts
from dialoop.config import Settings
from dialoop.errors import InvalidInputError
from dialoop.store.models import Feedback, Lesson

UNRELATED = ("What is the capital of France?", "what is the weather like today?", "?!?")


class SameEverywhere:
    """An embedder that finds every two texts identical (cosine 1.0): the worst case, in
    which only the word checks can keep a lesson off an unrelated message."""

    name, dim = "same", 8

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile(np.full(self.dim, self.dim ** -0.5, dtype=np.float32), (len(texts), 1))


@pytest.fixture
def parts(settings: Settings) -> Iterator[Parts]:
    parts = open_parts(settings, embedder=SameEverywhere())
    yield parts
    parts.close()


def _rows(parts: Parts) -> tuple[int, int]:
    with parts.db.read() as s:
        return (s.scalar(sa.select(sa.func.count(Feedback.id))),
                s.scalar(sa.select(sa.func.count(Lesson.id))))


@pytest.mark.parametrize("question", ["?!?", " ... ", "¿¡!?", "😀 ?"])
def test_a_question_without_words_is_refused_and_nothing_is_stored(
        parts: Parts, question: str) -> None:
    with pytest.raises(InvalidInputError, match="has no words"):
        parts.learning.teach(question, "Paris.", user="ann")
    assert _rows(parts) == (0, 0)


def test_a_symbols_only_lesson_already_stored_matches_nothing(parts: Parts) -> None:
    # As an older dialoop could store it, before teach() refused it.
    vector = SameEverywhere().embed(["?!?"])[0].tobytes()
    with parts.db.write() as s:
        s.add(Lesson(kind="correction", user_id="ann", scope="user:ann", question="?!?",
                     answer="Paris.", key_terms=[], embedding=vector, status="active"))
    memory = parts.learning.memory
    for message in UNRELATED:
        assert memory.match(message, user="ann") == [], message


def test_a_lesson_in_words_still_matches(parts: Parts) -> None:
    receipt = parts.learning.teach("What is the capital of Veltria?", "Karmoss.", user="ann")
    memory = parts.learning.memory
    found = memory.match("what's the capital of Veltria?", user="ann")
    assert [m.lesson_id for m in found] == [receipt.lesson_id]
    assert memory.match("What is the capital of France?", user="ann") == []  # other name
    short = parts.learning.teach("2+2?", "4.", user="ann")  # digits are words too
    assert [m.lesson_id for m in memory.match("2+2?", user="ann")] == [short.lesson_id]


@pytest.mark.parametrize(("taught", "same", "opposite"), [
    ("When does the Quorra Valley ski season start?",
     "When does the ski season begin in Quorra Valley?",
     "When does the Quorra Valley ski season end?"),
    ("What is the check-in time at the Velloway Hotel?",
     "What time may guests arrive at the Velloway Hotel?",
     "What is the check-out time at the Velloway Hotel?"),
    ("What is the minimum age to join the Corvath Sailing Club?",
     "What is the lowest age for joining the Corvath Sailing Club?",
     "What is the maximum age to join the Corvath Sailing Club?"),
    # "Moon" is part of the name, not the moons relation: wrote ≠ illustrated
    ("Who illustrated the children's book Moss and the Moon Cat?",
     "Who drew the pictures for Moss and the Moon Cat?",
     "Who wrote Moss and the Moon Cat?"),
    ("Who is the lead singer of the band Copper Wolves?",
     "Copper Wolves' frontwoman is who?",
     "Who plays drums in Copper Wolves?"),
])
def test_the_opposite_or_another_relation_of_the_same_name_is_not_the_lesson(
        parts: Parts, taught: str, same: str, opposite: str) -> None:
    # The encoder finds every two texts identical here: only the word checks decide.
    parts.learning.teach(taught, "An answer.", user="ann")
    assert [m.question for m in parts.learning.memory.match(same, user="ann")] == [taught]
    assert parts.learning.memory.match(opposite, user="ann") == []
