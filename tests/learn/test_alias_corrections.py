"""Correcting a knowledge-graph answer teaches the relation alias it missed, through the
learning loop (``LearningLoop.correct`` / ``teach``), in the corrector's scope, and
forgetting the lesson forgets it.

The corrected turns carry the trace the dialogue manager stores
(``DialogueTrace.knowledge`` = ``KnowledgeResult.describe()``). No model runs: the
embedder is the hashing fake, and the graph matches relations by their words only.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dialoop.assistant import Parts, open_assistant, open_parts
from dialoop.config import Settings
from dialoop.dialogue.session import Sessions
from dialoop.evidence import DialogueTrace, Scope, TurnTrace
from dialoop.store.models import Lesson
from tests.fakes import FakeEngine, HashEmbedder
from tests.knowledge.film_graph import APPEAR, load_films, write_films


@pytest.fixture
def parts(settings: Settings) -> Iterator[Parts]:
    parts = open_parts(settings, embedder=HashEmbedder())
    load_films(parts.knowledge, settings)
    yield parts
    parts.close()


def _answered(parts: Parts, user: str, question: str) -> int:
    """An assistant turn answering ``question`` from the graph, traced as the manager does."""
    found = parts.knowledge.lookup(question, user=user)
    trace = TurnTrace(DialogueTrace(
        domain="general", policy="rule", intent={}, understood={}, state_before={},
        state_after={}, response="knowledge", knowledge=found.describe()))
    sessions = Sessions(parts.db)
    session = sessions.create(user)
    sessions.add_turn(session, "user", question)
    reply = found.reply or "I am not sure."
    return sessions.add_turn(session, "assistant", reply, trace=trace.to_dict()).id


def test_a_correction_teaches_the_alias_for_the_user_only(parts: Parts) -> None:
    turn = _answered(parts, "ann", APPEAR)
    assert parts.knowledge.lookup(APPEAR, user="ann").declined
    receipt = parts.learning.correct(turn, "Copper Sky and Salt Road", user="ann")

    again = parts.knowledge.lookup("Which films did Jonah Reyes appear in?", user="ann")
    assert again.found and sorted(again.values) == ["Copper Sky", "Glass Harbor"]
    assert "[triple:" in (again.reply or "")  # from the graph, cited
    assert parts.knowledge.lookup("Which films did Jonah Reyes appear in?", user="bob").declined

    parts.learning.forget(receipt.lesson_id, user="ann")  # the alias goes with its lesson
    assert parts.knowledge.lookup("Which films did Jonah Reyes appear in?", user="ann").declined


def test_naming_the_relation_teaches_it_and_the_lesson_says_the_graphs_answer(
        parts: Parts) -> None:
    turn = _answered(parts, "ann", APPEAR)
    receipt = parts.learning.correct(turn, "no, I meant the films she starred in", user="ann")
    with parts.db.read() as s:
        lesson = s.get(Lesson, receipt.lesson_id)
    assert lesson is not None and lesson.answer.startswith("Copper Sky and Salt Road")
    assert parts.knowledge.lookup(APPEAR, user="ann").found


def test_a_correction_of_a_turn_the_graph_was_not_asked_teaches_nothing(parts: Parts
                                                                        ) -> None:
    sessions = Sessions(parts.db)
    session = sessions.create("ann")
    sessions.add_turn(session, "user", APPEAR)
    turn = sessions.add_turn(session, "assistant", "Many films.").id  # no knowledge trace
    parts.learning.correct(turn, "Copper Sky and Salt Road", user="ann")
    assert parts.knowledge.lookup("Which films did Jonah Reyes appear in?",
                                  user="ann").declined


def test_an_ambiguous_correction_teaches_nothing_and_still_stores_the_lesson(parts: Parts
                                                                             ) -> None:
    question = "What films is Tomas Brandt credited on?"
    turn = _answered(parts, "ann", question)
    receipt = parts.learning.correct(turn, "Glass Harbor and Salt Road", user="ann")
    assert receipt.lesson_id is not None
    assert not parts.knowledge.lookup("What films is Nadia Fenn credited on?",
                                      user="ann").found


def test_a_taught_lesson_teaches_the_alias_too(parts: Parts) -> None:
    # "scripted": a word neither the graph nor the shared relation table knows ("penned"
    # the table reads as *author*, which "written_by" says too)
    assert parts.knowledge.lookup("Who scripted Glass Harbor?", user="ann").declined
    parts.learning.teach("Who scripted Copper Sky?", "Nadia Fenn", user="ann")
    answer = parts.knowledge.lookup("Who scripted Glass Harbor?", user="ann")
    assert answer.found and answer.values == ["Ilse Morgan"]
    assert parts.knowledge.lookup("Who scripted Glass Harbor?", user="bob").declined
    assert parts.knowledge.lookup("Who penned Glass Harbor?", user="bob").values == [
        "Ilse Morgan"]


def test_a_lesson_an_admin_promotes_takes_its_alias_to_everyone(parts: Parts) -> None:
    turn = _answered(parts, "ann", APPEAR)
    receipt = parts.learning.correct(turn, "Copper Sky and Salt Road", user="ann")
    assert parts.knowledge.lookup(APPEAR, user="bob").declined
    promoted = parts.learning.promote_lesson(receipt.lesson_id, user="local")  # an admin
    assert parts.knowledge.lookup("Which films did Jonah Reyes appear in?", user="bob").found
    parts.learning.forget(promoted.id, user="local")
    assert parts.knowledge.lookup("Which films did Jonah Reyes appear in?",
                                  user="bob").declined


@pytest.mark.slow  # the assistant's matcher and memory load the real MiniLM (about 10 s)
def test_through_the_assistant_the_next_question_is_answered_from_the_graph(
        settings: Settings) -> None:
    with open_assistant(settings, engine=FakeEngine()) as bot:
        bot.parts.knowledge.import_file(write_films(settings), user="op",
                                        scope=Scope.everyone())
        ann = bot.session(user="ann")
        declined = bot.ask(APPEAR, session=ann)
        assert declined.text.startswith("I don't know")
        bot.parts.learning.correct(declined.turn_id, "no, I meant the films she starred in",
                                   user="ann")
        answered = bot.ask("Which films did Jonah Reyes appear in?", session=ann)
        assert "Glass Harbor" in answered.text and "[triple:" in answered.text
        bob = bot.ask("Which films did Jonah Reyes appear in?", session=bot.session(user="bob"))
        assert bob.text.startswith("I don't know")
