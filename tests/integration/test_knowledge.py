"""Grounded answers through the whole stack: the real model, a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialoop.assistant import Assistant, open_assistant
from dialoop.cli.chat import Repl
from dialoop.cli.kg import register  # noqa: F401  (adds /fact to the chat commands)
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.evidence import Scope

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def kgqa_bot(assistant: Assistant) -> Assistant:
    assistant.parts.knowledge.import_file(EXAMPLES / "kgqa" / "graph.jsonl", user="operator")
    return assistant


@pytest.fixture
def store_bot(assistant: Assistant) -> Assistant:
    for name in ("knowledge.jsonl", "knowledge.md"):
        assistant.parts.knowledge.import_file(EXAMPLES / "store_support" / name, user="operator")
    return assistant


def test_grounded_answer_cites_its_triples(kgqa_bot: Assistant) -> None:
    reply = kgqa_bot.ask("Where was the author of The Salt Orchard born?")
    assert reply.text.startswith("Lindhaven")
    assert [e.kind for e in reply.prompt.evidence] == ["triple", "triple"]
    for e in reply.prompt.evidence:
        assert e.source in reply.text  # the citations are in the answer
    turn = kgqa_bot.parts.sessions.turns(kgqa_bot.parts.sessions.get(reply.session_id, "local"))[-1]
    assert turn.trace["dialogue"]["knowledge"]["found"] is True
    assert turn.trace["context"]["evidence"][0]["source"].startswith("triple:")


def test_unanswerable_question_is_declined(kgqa_bot: Assistant) -> None:
    reply = kgqa_bot.ask("What is the phone number of Mara Quell?")
    assert reply.text.startswith("I don't know")
    assert reply.finish_reason == "stop"


def test_the_model_can_word_the_graph_answer(kgqa_bot: Assistant,
                                            llama_engine: LlamaCppEngine) -> None:
    settings = kgqa_bot.settings.model_copy(update={"knowledge_answer": "model"})
    with open_assistant(settings, engine=llama_engine) as bot:  # the same home and database
        reply = bot.ask("Who is the mayor of Port Alder?",
                        params=bot.default_params(max_tokens=48))
    answer = reply.prompt.evidence[0]
    assert answer.kind == "answer" and "Ilsa Varn" in answer.text  # the graph's answer…
    assert reply.text and reply.usage.completion_tokens > 0  # …worded by the model
    assert reply.trace.dialogue.response == "generated"


def test_decline_can_be_turned_off(kgqa_bot: Assistant, llama_engine: LlamaCppEngine) -> None:
    settings = kgqa_bot.settings.model_copy(update={"knowledge_decline": False})
    with open_assistant(settings, engine=llama_engine) as bot:
        reply = bot.ask("What is the phone number of Mara Quell?",
                        params=bot.default_params(max_tokens=24))
    dialogue = reply.trace.dialogue
    assert dialogue.knowledge["declined"]  # the graph has no answer…
    assert not dialogue.knowledge["direct"] and dialogue.response == "generated"
    assert reply.usage.completion_tokens > 0  # …and the model answers instead of the decline


def test_store_facts_answer_product_questions(store_bot: Assistant) -> None:
    assert "49.00 USD" in store_bot.ask("How much is the Aurora kettle?").text
    assert "1.7 litres" in store_bot.ask("What's the capacity of the kettle?").text
    cheap = store_bot.ask("Which products cost under 50 dollars?").text
    assert all(p in cheap for p in ("Aurora Kettle", "Nimbus Toaster", "Cumulus Pillow"))
    assert "Cirrus Blender" not in cheap
    assert store_bot.ask("What is the cheapest product?").text.startswith("Cumulus Pillow")
    unknown = store_bot.ask("How much does the Zephyr Kettle cost?").text
    assert unknown.startswith("I don't know")


def test_policy_questions_get_document_passages(store_bot: Assistant) -> None:
    reply = store_bot.ask("Can I return an opened pillow?",
                          params=store_bot.default_params(max_tokens=48))
    assert any(e.kind == "document" and e.source.startswith("knowledge.md#")
               for e in reply.prompt.evidence)
    assert reply.usage.completion_tokens > 0


def test_general_questions_are_not_declined(store_bot: Assistant) -> None:
    """France is in the store's graph (it ships there), but the graph says nothing about it."""
    reply = store_bot.ask("What is the capital of France?",
                          params=store_bot.default_params(max_tokens=24))
    dialogue = reply.trace.dialogue
    assert not dialogue.knowledge["declined"] and dialogue.response == "generated"
    assert reply.usage.completion_tokens > 0 and reply.prompt.evidence == []


def test_a_fact_taught_in_chat_is_only_for_its_user(assistant: Assistant,
                                                   capsys: pytest.CaptureFixture) -> None:
    with open_assistant(assistant.settings.model_copy(update={"user": "ann"}),
                        engine=assistant.engine) as as_ann:
        ann = Repl(as_ann, as_ann.session("ann-chat"))
        ann.handle("/fact Rex | owner | Alice Marsh")
        assert "Noted triple:" in capsys.readouterr().out
        ann.handle("Who is the owner of Rex?")
        assert "Alice Marsh" in capsys.readouterr().out
    bob = assistant.ask("Who is the owner of Rex?", user="bob",
                        params=assistant.default_params(max_tokens=32))
    assert "Alice Marsh" not in bob.text
    assert bob.prompt.evidence == []


def test_a_corrected_fact_becomes_a_triple_of_its_lesson(kgqa_bot: Assistant) -> None:
    question = "Who is the mayor of Quillon?"
    first = kgqa_bot.parts.learning.teach(question, "The mayor of Quillon is Juno Harrow.", user="ann")
    ask = {"question": question}
    assert "Juno Harrow" in (kgqa_bot.parts.knowledge.lookup(**ask, user="ann").answer or "")
    assert "Juno Harrow" not in (kgqa_bot.parts.knowledge.lookup(**ask, user="bob").answer or "")
    # A later correction of the same question replaces the fact with its own.
    kgqa_bot.parts.learning.teach(question, "The mayor of Quillon is Ada Brisk.", user="ann")
    answer = kgqa_bot.parts.knowledge.lookup(**ask, user="ann").answer or ""
    assert "Ada Brisk" in answer and "Juno Harrow" not in answer
    second = kgqa_bot.parts.learning.lessons(user="ann")[0]
    assert first.lesson_id != second.id
    kgqa_bot.parts.learning.forget(second.id, user="ann")
    assert "Ada Brisk" not in (kgqa_bot.parts.knowledge.lookup(**ask, user="ann").answer or "")
    # An admin promoting the lesson to everyone promotes its fact with it.
    third = kgqa_bot.parts.learning.teach(question, "The mayor of Quillon is Ola Penn.", user="ann")
    promoted = kgqa_bot.parts.learning.promote_lesson(third.lesson_id, user="local")
    assert "Ola Penn" in (kgqa_bot.parts.knowledge.lookup(**ask, user="bob").answer or "")
    kgqa_bot.parts.learning.forget(promoted.id, user="local")
    assert "Ola Penn" not in (kgqa_bot.parts.knowledge.lookup(**ask, user="bob").answer or "")
    # An answer that is not a plain fact stays a lesson only.
    kgqa_bot.parts.learning.teach("What should I pack for Quillon?", "Boots and a raincoat.", user="ann")
    assert kgqa_bot.parts.knowledge.forget(scope=Scope.of("ann"), lesson_id=kgqa_bot.parts.learning.lessons(
        user="ann")[0].id) == 0
