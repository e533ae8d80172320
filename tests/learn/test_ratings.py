"""A line's bare ratings become (question, answer, ±1) examples for the style adapter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dialoop.assistant import Parts, open_parts
from dialoop.config import Settings
from dialoop.dialogue.session import Sessions
from dialoop.learn.ratings import Rated, rated_examples, rated_lines, split_held_out
from tests.fakes import HashEmbedder


@pytest.fixture
def parts(settings: Settings) -> Iterator[Parts]:
    parts = open_parts(settings, embedder=HashEmbedder())
    yield parts
    parts.close()


def _turn(parts: Parts, user: str, question: str, answer: str, session: str | None = None
          ) -> int:
    sessions = Sessions(parts.db)
    chat = sessions.open(session, user)
    sessions.add_turn(chat, "user", question)
    return sessions.add_turn(chat, "assistant", answer).id


def test_bare_ratings_of_the_users_own_turns_last_rating_wins(parts: Parts) -> None:
    learning = parts.learning
    short = _turn(parts, "ann", "Is my card on its way?", "Yes, it ships today.")
    long_ = _turn(parts, "ann", "How do I top up?", "First open the app. Then tap top up. Then pay.")
    fixed = _turn(parts, "ann", "What is the fee?", "There is no fee.")
    changed = _turn(parts, "ann", "Can I cancel?", "No.")
    bobs = _turn(parts, "bob", "Is my card on its way?", "It is.")
    learning.rate(short, 1, user="ann")
    learning.rate(long_, -1, user="ann", reason="too long")
    learning.rate(fixed, -1, user="ann")
    learning.correct(fixed, "The fee is 2 euros.", user="ann")  # a lesson, not a style rating
    learning.rate(changed, 1, user="ann")
    learning.rate(changed, -1, user="ann")  # changed their mind: the last rating counts
    learning.rate(bobs, -1, user="bob")

    got = rated_examples(parts.db, "user:ann")
    assert [(r.question, r.answer, r.rating) for r in got] == [
        ("Is my card on its way?", "Yes, it ships today.", 1),
        ("How do I top up?", "First open the app. Then tap top up. Then pay.", -1),
        ("Can I cancel?", "No.", -1),
    ]
    assert all(isinstance(r, Rated) and r.feedback_id for r in got)
    assert [r.turn_id for r in got] == [short, long_, changed]
    assert [r.desirable for r in got] == [True, False, False]
    assert [(r.answer, r.rating) for r in rated_examples(parts.db, "user:bob")] == [("It is.", -1)]
    assert rated_examples(parts.db, "global") == []  # ratings are personal
    assert rated_examples(parts.db, "user:nobody") == []


def test_a_deleted_session_takes_its_ratings_examples_with_it(parts: Parts) -> None:
    kept = _turn(parts, "ann", "Is my card on its way?", "Yes.", session="kept")
    gone = _turn(parts, "ann", "How do I top up?", "In the app.", session="gone")
    parts.learning.rate(kept, 1, user="ann")
    parts.learning.rate(gone, 1, user="ann")
    Sessions(parts.db).delete("gone", "ann")
    assert [r.turn_id for r in rated_examples(parts.db, "user:ann")] == [kept]


def test_lines_with_enough_ratings_and_the_held_out_split(parts: Parts) -> None:
    for i in range(5):
        parts.learning.rate(_turn(parts, "ann", f"Question {i}?", f"Answer {i}."), 1, user="ann")
    parts.learning.rate(_turn(parts, "bob", "Question?", "Answer."), -1, user="bob")
    assert list(rated_lines(parts.db, 5)) == ["user:ann"]  # bob has one rating: not enough
    assert set(rated_lines(parts.db, 1)) == {"user:ann", "user:bob"}
    rated = rated_lines(parts.db, 5)["user:ann"]
    train, held = split_held_out(rated)
    assert [r.question for r in held] == ["Question 3?"]  # every fourth, oldest first
    assert len(train) == 4 and not set(train) & set(held)
    # A new rating moves none of the earlier ones across.
    parts.learning.rate(_turn(parts, "ann", "Question 5?", "Answer 5."), -1, user="ann")
    train2, held2 = split_held_out(rated_examples(parts.db, "user:ann"))
    assert held2 == held and train2[:4] == train
