"""Learning on the real model and a real SQLite file.

The fast path: a taught fact shapes the very next answers, in scope only. The slow
path: consolidation trains, gates, promotes or rejects, and rolls back.

Answers are capped at 40 tokens and the engine uses one thread: the bundled model
rambles to max_tokens, and on a busy 2-core machine a 2-thread llama.cpp pool
collapses (see learn_threads in config.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dialoop.assistant import Assistant
from dialoop.cli.dialogue import format_trace
from dialoop.config import load_settings
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.engine.models import DEFAULT_MODEL_NAME, bundled_gguf
from dialoop.store import open_database
from dialoop.store.models import Feedback, Lesson

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_thread_engine() -> Iterator[LlamaCppEngine]:
    engine = LlamaCppEngine(bundled_gguf(), name=DEFAULT_MODEL_NAME, context_window=2048,
                            threads=1)
    yield engine
    engine.close()


@pytest.fixture
def assistant(dialoop_home: Path, one_thread_engine: LlamaCppEngine) -> Iterator[Assistant]:
    settings = load_settings(max_tokens=40)
    db = open_database(settings.resolved_database_url)
    yield Assistant(settings, one_thread_engine, db)
    db.close()

QUESTION = "Who is the CEO of Zorvath Dynamics?"
ANSWER = "Mirela Quonst is the CEO of Zorvath Dynamics."


def test_a_taught_fact_answers_the_question_and_its_paraphrase(assistant: Assistant) -> None:
    assert "Quonst" not in assistant.ask(QUESTION).text  # the base model does not know it
    receipt = assistant.teach(QUESTION, ANSWER)

    same = assistant.ask(QUESTION)
    paraphrase = assistant.ask("Who runs Zorvath Dynamics?")
    assert "Mirela Quonst" in same.text
    assert "Mirela Quonst" in paraphrase.text
    # the turn trace records which lesson shaped the answer, with its score and scope
    assert [x["id"] for x in paraphrase.learning["lessons"]] == [receipt.lesson_id]
    assert paraphrase.learning["lessons"][0]["scope"] == "user"
    turn = assistant.sessions.turns(assistant.sessions.get(paraphrase.session_id, "local"))[-1]
    assert turn.trace["learning"]["lessons"][0]["id"] == receipt.lesson_id
    assert assistant.adapters.history() == []  # no training happened
    why = format_trace(turn)  # what /why and `dialoop trace` print
    assert f"lesson       #{receipt.lesson_id} (user, similarity" in why
    assert "adapter      none (the base model)" in why


def test_near_questions_other_users_and_no_memory_are_untouched(assistant: Assistant) -> None:
    assistant.teach(QUESTION, ANSWER)
    for near in ("Who is the CEO of Zorvath Foods?", "Who is the CEO of East Zorvath Dynamics?",
                 "What is the capital of France?"):
        reply = assistant.ask(near)
        assert "Quonst" not in reply.text, near
        assert reply.learning["lessons"] == []  # other names: the lesson does not even match
    # The same entity, another question: the lesson may come up as evidence (similarity
    # 0.73), but it is below the direct-answer bar and the answer is not the taught one.
    reply = assistant.ask("What does Zorvath Dynamics make?")
    assert "Quonst" not in reply.text
    assert reply.learning.get("memory") != "direct"
    assert "Quonst" not in assistant.ask(QUESTION, user="bob").text
    assert "Quonst" not in assistant.ask(QUESTION, memory=False).text


def test_forget_and_supersede(assistant: Assistant) -> None:
    first = assistant.teach(QUESTION, ANSWER)
    second = assistant.teach("Who is the CEO of Zorvath Dynamics?", "Talia Brandoth")
    assert second.superseded == (first.lesson_id,)
    assert "Talia Brandoth" in assistant.ask("Who runs Zorvath Dynamics?").text
    assistant.forget(second.lesson_id)
    reply = assistant.ask(QUESTION)
    assert "Brandoth" not in reply.text and "Quonst" not in reply.text
    with assistant.db.read() as s:  # forgetting keeps the record of what was taught
        statuses = dict(s.execute(sa.select(Lesson.id, Lesson.status)).all())
    assert statuses == {first.lesson_id: "superseded", second.lesson_id: "forgotten"}


def test_global_lessons_reach_everyone_and_need_an_admin(assistant: Assistant) -> None:
    import pytest

    from dialoop.errors import PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        assistant.teach(QUESTION, ANSWER, user="bob", scope="global")
    assistant.teach(QUESTION, ANSWER, scope="global")  # "local" is the admin by default
    assert "Mirela Quonst" in assistant.ask("Who runs Zorvath Dynamics?", user="bob").text


def test_a_correction_on_a_turn_and_ratings(assistant: Assistant) -> None:
    wrong = assistant.ask(QUESTION)
    assistant.rate(wrong.turn_id, -1, reason="made up")
    receipt = assistant.correct(wrong.turn_id, ANSWER)
    again = assistant.ask(QUESTION, session=wrong.session_id)
    assert "Mirela Quonst" in again.text
    assistant.rate(again.turn_id, +1)
    with assistant.db.read() as s:
        rows = list(s.scalars(sa.select(Feedback).order_by(Feedback.id)))
    assert [(r.kind, r.rating, r.turn_id) for r in rows] == [
        ("rating", -1, wrong.turn_id), ("correction", None, wrong.turn_id),
        ("rating", 1, again.turn_id)]
    assert rows[1].question == QUESTION and rows[1].lesson_id == receipt.lesson_id
    assert assistant.learning_status()["satisfaction"]["base"]["satisfaction"] == 0.5


# -- the slow path -----------------------------------------------------------------------

# Tiny runs: a handful of replay prompts, few epochs. Thresholds are the test's.
TINY = {"learn_replay": 4, "learn_gate_replay": 4}


@pytest.fixture
def model_cache(dialoop_home: Path, hf_model_dir: Path) -> None:
    """Share the dequantized torch weights (made once per test session) with the worker."""
    cache = dialoop_home / "cache" / "models"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.symlink_to(hf_model_dir.parent, target_is_directory=True)


def test_consolidation_promotes_and_rollback_restores(assistant: Assistant, model_cache: None
                                                      ) -> None:
    before = assistant.ask(QUESTION, memory=False).text
    assistant.teach(QUESTION, ANSWER)
    run = assistant.consolidate(options={**TINY, "learn_epochs": 8, "learn_gate_reliability": 0.0,
                                         "learn_gate_generalization": 0.0,
                                         "learn_gate_locality": 0.0})
    assert run.status == "done", run.error
    line = run.report["lines"]["user:local"]
    assert line["outcome"] == "promoted"
    assert set(line["gate"]["metrics"]) >= {"reliability", "generalization", "locality"}
    assert line["size_bytes"]["adapter.gguf"] > 0

    # the running engine picks the promoted version up on the next request (hot swap)
    trained = assistant.ask(QUESTION, memory=False)
    assert trained.adapter == "user:local@v1"
    assert "Quonst" in trained.text
    assert assistant.ask(QUESTION, memory=False, user="bob").adapter is None  # personal

    assistant.rollback("user:local", None)
    again = assistant.ask(QUESTION, memory=False)
    assert again.adapter is None and again.text == before
    assert [h["status"] for h in assistant.learning_history()] == ["promoted"]


def test_the_gate_rejects_what_falls_short(assistant: Assistant, model_cache: None) -> None:
    before = assistant.ask(QUESTION, memory=False).text
    assistant.teach(QUESTION, ANSWER)
    # a learning rate too small to learn anything: reliability 0 < the 0.9 required
    run = assistant.consolidate(options={**TINY, "learn_epochs": 1, "learn_lr": 1e-7,
                                         "learn_gate_reliability": 0.9})
    line = run.report["lines"]["user:local"]
    assert line["outcome"] == "rejected"
    assert "reliability" in line["gate"]["failed"]
    assert line["gate"]["failures"]["reliability"][0]["prompt"] == QUESTION
    reply = assistant.ask(QUESTION, memory=False)
    assert reply.adapter is None and reply.text == before  # nothing changed what serves
    assert assistant.adapters.get("user:local", 1).status == "rejected"
    status = assistant.learning_status()
    assert status["adapter"] is None and status["lessons"]["pending"] == 1
    assert status["last_run"]["report"]["lines"]["user:local"]["outcome"] == "rejected"
