"""The memory learns from use: a question its lesson missed, corrected again with the
lesson's answer, joins that lesson; and relation words decide what the encoder cannot."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import sqlalchemy as sa

from dialoop.assistant import Parts, open_parts
from dialoop.config import Settings
from dialoop.dialogue.session import Sessions
from dialoop.learn.relations import asks_for, canonical, disjoint, relations
from dialoop.store.models import Feedback, Lesson, LessonWording
from tests.fakes import HashEmbedder

TAUGHT = "Who is the chief executive of Sundquist Aerospace?"
ANSWER = "Helena Marchetti-Ross is the chief executive of Sundquist Aerospace."
MISSED = "Which person sits at the top of Sundquist Aerospace?"


@pytest.fixture
def parts(settings: Settings) -> Iterator[Parts]:
    # Hash vectors: two different texts are unrelated, so every rewording is a miss.
    parts = open_parts(settings.model_copy(update={"knowledge": False}),
                       embedder=HashEmbedder())
    yield parts
    parts.close()


def _count(parts: Parts, model: type) -> int:
    with parts.db.read() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def test_a_recorrected_wording_joins_the_lesson_that_missed_it(parts: Parts) -> None:
    learning = parts.learning
    first = learning.teach(TAUGHT, ANSWER, user="ann")
    assert learning.recall(MISSED, user="ann").matches == []
    # "I told you before": the same answer, in other words, on a question the lesson missed.
    again = learning.teach(MISSED, "I told you before: Helena Marchetti-Ross.", user="ann")
    assert again.joined and again.lesson_id == first.lesson_id
    assert _count(parts, Lesson) == 1 and _count(parts, Feedback) == 2  # both recorded
    found = learning.recall(MISSED, user="ann").matches
    assert [m.lesson_id for m in found] == [first.lesson_id] and found[0].answer == ANSWER
    # Saying it a third time adds nothing new.
    learning.teach(MISSED, ANSWER, user="ann")
    assert _count(parts, LessonWording) == 1
    # Forgetting the lesson forgets its wordings with it.
    learning.forget(first.lesson_id, user="ann")
    assert learning.recall(MISSED, user="ann").matches == []


def test_a_correction_of_an_answered_turn_joins_too(parts: Parts) -> None:
    first = parts.learning.teach(TAUGHT, ANSWER, user="ann")
    sessions = Sessions(parts.db)
    session = sessions.create("ann")
    sessions.add_turn(session, "user", MISSED)
    turn = sessions.add_turn(session, "assistant", "I don't know.").id
    receipt = parts.learning.correct(turn, "Helena Marchetti-Ross", user="ann")
    assert receipt.joined and receipt.lesson_id == first.lesson_id
    assert parts.learning.recall(MISSED, user="ann").matches[0].lesson_id == first.lesson_id


def test_what_does_not_join(parts: Parts) -> None:
    learning = parts.learning
    first = learning.teach(TAUGHT, ANSWER, user="ann")
    # Another answer: a new lesson (the later correction), not a wording.
    other = learning.teach(MISSED, "Odile Franssen runs Sundquist Aerospace.", user="ann")
    assert not other.joined and other.lesson_id != first.lesson_id
    # Another entity with the same answer text: not about what the lesson is about.
    near = learning.teach("Who is the chief executive of Sundquist Shipping?", ANSWER,
                          user="ann")
    assert not near.joined
    # Another user's correction never joins ann's lesson.
    bob = learning.teach(MISSED, ANSWER, user="bob")
    assert not bob.joined and _count(parts, LessonWording) == 0


class SameEverywhere:
    """Every two texts identical (cosine 1.0): only the word checks can say no."""

    name, dim = "same", 8

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile(np.full(self.dim, self.dim ** -0.5, dtype=np.float32), (len(texts), 1))


def test_other_relations_about_the_same_entity_are_not_matched(settings: Settings) -> None:
    parts = open_parts(settings.model_copy(update={"knowledge": False}),
                       embedder=SameEverywhere())
    try:
        memory = parts.learning
        memory.teach("What is the boiling point of the solvent Dravonol?", "143 °C", user="ann")
        memory.teach("When was the Halvorsen Observatory built?", "In 1887.", user="ann")
        for other in ("What is the melting point of Dravonol?",
                      "Who funded the Halvorsen Observatory?"):
            assert memory.recall(other, user="ann").matches == [], other
        for same in ("At what temperature does Dravonol boil?",
                     "In what year was the Halvorsen Observatory constructed?"):
            assert memory.recall(same, user="ann").matches, same
    finally:
        parts.close()


def test_relation_words() -> None:
    assert canonical("Name the CEO of Acme.", like="Who is the chief executive of Acme?") \
        == "Name the chief executive of Acme."
    same = "Who is the CEO of Zorvath Dynamics?"  # its own question: exactly the same text
    assert canonical(same, like=same) == same
    # "manages" may mean a chief executive or a coach: said as the lesson says it.
    assert "head coach" in canonical("Who manages the Kestrels?",
                                     like="Who is the head coach of the Kestrels?")
    assert disjoint(relations("melting point"), relations("the boiling point of X"))
    assert not disjoint(relations("Who heads X?"), relations("the CEO of X"))
    assert not disjoint(relations("What is X?"), relations("the CEO of X"))  # nothing named
    assert asks_for("When was it built?") == {"time"}
    assert asks_for("In which city is X based?") == {"place"}
    assert asks_for("What is X's return period?") == frozenset()
