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

from dialoop.assistant import Assistant, open_assistant
from dialoop.cli.dialogue import format_trace
from dialoop.config import load_settings
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.engine.models import DEFAULT_MODEL_NAME, bundled_gguf
from dialoop.learn.loop import LearningLoop
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
    with open_assistant(load_settings(max_tokens=40), engine=one_thread_engine) as bot:
        yield bot


@pytest.fixture
def learning(assistant: Assistant) -> LearningLoop:
    return assistant.parts.learning

QUESTION = "Who is the CEO of Zorvath Dynamics?"
ANSWER = "Mirela Quonst is the CEO of Zorvath Dynamics."


def test_a_taught_fact_answers_the_question_and_its_paraphrase(assistant: Assistant, learning: LearningLoop) -> None:
    assert "Quonst" not in assistant.ask(QUESTION).text  # the base model does not know it
    receipt = learning.teach(QUESTION, ANSWER, user="local")

    same = assistant.ask(QUESTION)
    paraphrase = assistant.ask("Who runs Zorvath Dynamics?")
    # both close enough to the lesson's question to be answered with the taught answer itself
    for reply in (same, paraphrase):
        assert reply.trace.memory == "direct"
        assert reply.text == ANSWER and reply.usage.completion_tokens == 0
    # the turn trace records which lesson shaped the answer, with its score and scope
    assert [x["id"] for x in paraphrase.trace.lessons] == [receipt.lesson_id]
    assert paraphrase.trace.lessons[0]["scope"] == "user:local"
    turn = assistant.parts.sessions.turns(assistant.parts.sessions.get(paraphrase.session_id, "local"))[-1]
    assert turn.trace["learning"]["lessons"][0]["id"] == receipt.lesson_id
    assert assistant.parts.adapters.history() == []  # no training happened
    why = format_trace(turn)  # what /why and `dialoop trace` print
    assert f"lesson       #{receipt.lesson_id} (user:local, similarity" in why
    assert "adapter      none (the base model)" in why


def test_near_questions_other_users_and_no_memory_are_untouched(assistant: Assistant, learning: LearningLoop) -> None:
    learning.teach(QUESTION, ANSWER, user="local")
    for near in ("Who is the CEO of Zorvath Foods?", "Who is the CEO of East Zorvath Dynamics?",
                 "What is the capital of France?"):
        reply = assistant.ask(near)
        assert "Quonst" not in reply.text, near
        assert reply.trace.lessons == []  # other names: the lesson does not even match
    # The same entity, another question: the lesson may come up as evidence (similarity
    # 0.73), but it is below the direct-answer bar: the model writes the answer. (What it
    # writes with the lesson in its prompt is up to the model.)
    reply = assistant.ask("What does Zorvath Dynamics make?")
    assert reply.trace.memory != "direct"
    assert reply.usage.completion_tokens > 0
    for untouched in (assistant.ask(QUESTION, user="bob"), assistant.ask(QUESTION, memory=False)):
        assert untouched.trace.lessons == [] and "Quonst" not in untouched.text


def test_forget_and_supersede(assistant: Assistant, learning: LearningLoop) -> None:
    first = learning.teach(QUESTION, ANSWER, user="local")
    second = learning.teach("Who is the CEO of Zorvath Dynamics?", "Talia Brandoth", user="local")
    assert second.superseded == (first.lesson_id,)
    assert assistant.ask("Who runs Zorvath Dynamics?").text == "Talia Brandoth"
    learning.forget(second.lesson_id, user="local")
    reply = assistant.ask(QUESTION)
    assert reply.trace.lessons == []  # neither lesson is used any more
    assert "Brandoth" not in reply.text and "Quonst" not in reply.text
    with assistant.parts.db.read() as s:  # forgetting keeps the record of what was taught
        statuses = dict(s.execute(sa.select(Lesson.id, Lesson.status)).all())
    assert statuses == {first.lesson_id: "superseded", second.lesson_id: "forgotten"}


def test_global_lessons_reach_everyone_and_need_an_admin(assistant: Assistant, learning: LearningLoop) -> None:
    import pytest

    from dialoop.errors import PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        learning.teach(QUESTION, ANSWER, user="bob", scope="global")
    learning.teach(QUESTION, ANSWER, user="local", scope="global")  # local: admin by default
    assert assistant.ask("Who runs Zorvath Dynamics?", user="bob").text == ANSWER


def test_a_correction_on_a_turn_and_ratings(assistant: Assistant, learning: LearningLoop) -> None:
    wrong = assistant.ask(QUESTION)
    learning.rate(wrong.turn_id, -1, user="local", reason="made up")
    receipt = learning.correct(wrong.turn_id, ANSWER, user="local")
    again = assistant.ask(QUESTION, session=wrong.session_id)
    assert again.text == ANSWER and again.trace.memory == "direct"
    learning.rate(again.turn_id, +1, user="local")
    with assistant.parts.db.read() as s:
        rows = list(s.scalars(sa.select(Feedback).order_by(Feedback.id)))
    assert [(r.kind, r.rating, r.turn_id) for r in rows] == [
        ("rating", -1, wrong.turn_id), ("correction", None, wrong.turn_id),
        ("rating", 1, again.turn_id)]
    assert rows[1].question == QUESTION and rows[1].lesson_id == receipt.lesson_id
    assert learning.status(user="local")["satisfaction"]["base"]["satisfaction"] == 0.5


# -- the slow path -----------------------------------------------------------------------

# Tiny runs: a handful of replay prompts, few epochs. Thresholds are the test's.
TINY = {"learn_replay": 4, "learn_gate_probes": 4}


@pytest.fixture
def model_cache(dialoop_home: Path, hf_model_dir: Path) -> None:
    """Share the dequantized torch weights (made once per test session) with the worker."""
    cache = dialoop_home / "cache" / "models"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.symlink_to(hf_model_dir.parent, target_is_directory=True)


def test_consolidation_promotes_and_rollback_restores(
        assistant: Assistant, learning: LearningLoop, model_cache: None) -> None:
    before = assistant.ask(QUESTION, memory=False).text
    learning.teach(QUESTION, ANSWER, user="local")
    run = learning.consolidate(user="local", options={
        **TINY, "learn_epochs": 8, "learn_gate_reliability": 0.0,
        "learn_gate_generalization": 0.0, "learn_gate_locality": 0.0})
    assert run.status == "done", run.error
    line = run.report["lines"]["user:local"]
    assert line["outcome"] == "promoted"
    assert set(line["gate"]["metrics"]) >= {"reliability", "generalization", "locality"}
    assert line["size_bytes"]["adapter.gguf"] > 0

    # the running engine picks the promoted version up on the next request (hot swap)
    trained = assistant.ask(QUESTION, memory=False)
    assert trained.adapter == "user:local@v1"
    assert trained.text != before  # the adapter serves (what it makes the model say varies)
    assert assistant.ask(QUESTION, memory=False, user="bob").adapter is None  # personal

    learning.rollback("user:local", None, user="local")
    again = assistant.ask(QUESTION, memory=False)
    assert again.adapter is None and again.text == before
    assert [h["status"] for h in learning.history(user="local")] == ["promoted"]


def test_the_gate_rejects_what_falls_short(assistant: Assistant, learning: LearningLoop,
                                          model_cache: None) -> None:
    before = assistant.ask(QUESTION, memory=False).text
    learning.teach(QUESTION, ANSWER, user="local")
    # a learning rate too small to learn anything: reliability 0 < the 0.9 required
    run = learning.consolidate(user="local", options={
        **TINY, "learn_epochs": 1, "learn_lr": 1e-7, "learn_gate_reliability": 0.9})
    line = run.report["lines"]["user:local"]
    assert line["outcome"] == "rejected"
    assert "reliability" in line["gate"]["failed"]
    assert line["gate"]["failures"]["reliability"][0]["prompt"] == QUESTION
    reply = assistant.ask(QUESTION, memory=False)
    assert reply.adapter is None and reply.text == before  # nothing changed what serves
    assert assistant.parts.adapters.get("user:local", 1).status == "rejected"
    status = learning.status(user="local")
    assert status["adapter"] is None and status["lessons"]["pending"] == 1
    assert status["last_run"]["report"]["lines"]["user:local"]["outcome"] == "rejected"
