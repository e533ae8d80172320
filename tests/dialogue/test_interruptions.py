"""A side question inside an open task (issue 15): while the assistant waits for a slot, a
confident intent that needs no slots of its own and has a fixed answer is answered and
the open question is asked again in the same reply; the goal and the slot asked for
stay. An intent that needs slots of its own is a new goal, as before."""

from __future__ import annotations

import textwrap

import pytest

from dialoop.assistant import open_assistant
from dialoop.config import Settings
from dialoop.dialogue.domain import Domain, load_domain
from dialoop.dialogue.intent import IntentClassifier
from dialoop.dialogue.manager import DialogueManager
from dialoop.dialogue.state import DialogueState
from dialoop.engine.embedding import default_embedder
from tests.fakes import FakeEngine, ScriptedEngine

QUESTION = "Which cuisine would you like?"


@pytest.fixture(scope="module")
def diner(tmp_path_factory: pytest.TempPathFactory) -> Domain:
    path = tmp_path_factory.mktemp("diner") / "domain.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: diner
        understanding: {{confidence_threshold: 0.5, llm_fallback: false}}
        slots:
          cuisine: {{type: enum, values: [italian, thai, mexican], question: "{QUESTION}"}}
          phone: {{type: number, question: "What is your phone number?"}}
        intents:
          book_table:
            requires: [cuisine]
            examples: [book a table, I want to reserve a table, can I book a table for
                       tonight, reserve a table for dinner, I'm looking for a restaurant]
          chitchat:
            examples: [who is your boss, are you a robot, how old are you,
                       what is your name, do you like music]
          weather:
            examples: [what's the weather like, will it rain today, is it sunny outside,
                       how cold is it, weather forecast please]
          callback:
            requires: [phone]
            examples: [please call me back, can someone phone me, I want a call back,
                       ring me later please, have someone call me]
        templates:
          chitchat: "I am the diner's assistant."
          book_table: "Booked: a {{{{ slots.cuisine }}}} table."
        policy:
          rules:
            - {{when: {{missing: true}}, action: clarify}}
            - {{when: {{intent: chitchat}}, action: answer, respond: chitchat}}
            - {{when: {{intent: book_table}}, action: answer, respond: book_table}}
            - {{when: {{intent: callback}}, action: answer}}
        """))
    return load_domain(path)


@pytest.fixture(scope="module")
def manager(diner: Domain) -> DialogueManager:
    return DialogueManager(diner, engine=FakeEngine(),
                           classifier=IntentClassifier(diner, default_embedder()))


class _Said:
    """A stored assistant turn: what state_from_turns reads."""

    role = "assistant"

    def __init__(self, state: DialogueState) -> None:
        self.state = state.to_dict()


ASKED = DialogueState(intent="book_table", requested="cuisine", turns=1)


def test_a_side_question_is_answered_and_the_open_question_asked_again(
        manager: DialogueManager) -> None:
    plan = manager.plan("are you a robot?", user="ann", turns=[_Said(ASKED)])
    assert plan.trace.understood["intent"] == "chitchat"
    assert [(s.action, s.response) for s in plan.trace.steps] == [
        ("answer", "template:chitchat"), ("clarify:cuisine", "question:cuisine")]
    assert plan.text == f"I am the diner's assistant. {QUESTION}"
    assert plan.trace.decided_by == "interruption"
    assert plan.state.intent == "book_table" and plan.state.requested == "cuisine"


def test_the_next_message_fills_the_slot_asked_for_again(manager: DialogueManager) -> None:
    side = manager.plan("are you a robot?", user="ann", turns=[_Said(ASKED)])
    plan = manager.plan("thai", user="ann", turns=[_Said(side.state)])
    assert plan.state.slots == {"cuisine": "thai"} and plan.state.intent == "book_table"
    assert plan.text == "Booked: a thai table."


def test_an_intent_that_needs_its_own_slots_is_a_new_goal(manager: DialogueManager) -> None:
    plan = manager.plan("please call me back", user="ann", turns=[_Said(ASKED)])
    assert plan.trace.decided_by != "interruption"
    assert plan.state.intent == "callback" and plan.state.requested == "phone"
    assert [s.action for s in plan.trace.steps] == ["clarify:phone"]


def test_without_an_open_question_a_side_question_is_just_answered(
        manager: DialogueManager) -> None:
    plan = manager.plan("are you a robot?", user="ann",
                        turns=[_Said(DialogueState(intent="book_table",
                                                   slots={"cuisine": "thai"}, turns=2))])
    assert [s.action for s in plan.trace.steps] == ["answer"]
    assert plan.state.intent == "chitchat" and plan.state.requested is None


def test_a_side_question_the_model_answers_is_followed_by_the_open_question(
        manager: DialogueManager) -> None:
    plan = manager.plan("will it rain today?", user="ann", turns=[_Said(ASKED)])
    assert [s.action for s in plan.trace.steps] == ["answer", "clarify:cuisine"]
    assert plan.text is None and plan.trace.response == "generated"  # the model answers …
    assert plan.prefix is None and plan.suffix == QUESTION  # … then the question is asked
    assert plan.state.intent == "book_table" and plan.state.requested == "cuisine"


def test_the_assistant_says_the_model_s_answer_then_the_question(
        settings: Settings, diner: Domain) -> None:
    engine = ScriptedEngine(lambda prompt, adapter: "No rain today.")
    with open_assistant(settings, engine=engine, domain=diner, policy="rule",
                        classifier=IntentClassifier(diner, default_embedder())) as bot:
        session = bot.session(None)
        assert bot.ask("I want to reserve a table", session=session).text == QUESTION
        reply = bot.ask("will it rain today?", session=session)
        assert reply.text == f"No rain today. {QUESTION}"
        engine.reply = lambda prompt, adapter: f"Sunny. {QUESTION}"  # asked it itself: once
        assert bot.ask("is it sunny outside?", session=session).text == f"Sunny. {QUESTION}"
        assert bot.ask("italian", session=session).text == "Booked: a italian table."
