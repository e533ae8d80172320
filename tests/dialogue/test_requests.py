"""Several requests in one message (issue 15): each is understood and acted on, one
reply answers all; a request that needs a detail is asked last and its question stays
pending; two that both need details make the reply ask which first; one request with
an "and" in it is not split."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dialoop.dialogue.domain import Domain, load_domain
from dialoop.dialogue.intent import IntentClassifier
from dialoop.dialogue.manager import DialogueManager
from dialoop.dialogue.state import DialogueState
from dialoop.engine.embedding import default_embedder
from tests.fakes import ScriptedEngine

STORE = Path(__file__).resolve().parents[2] / "examples" / "store_support" / "domain.yaml"


@pytest.fixture(scope="module")
def store() -> Domain:
    return load_domain(STORE)


@pytest.fixture(scope="module")
def manager(store: Domain) -> DialogueManager:
    engine = ScriptedEngine(lambda prompt, adapter: "1")
    return DialogueManager(store, engine=engine, classifier=IntentClassifier(
        store, default_embedder()))


class _Said:
    """A stored assistant turn: what state_from_turns reads."""

    role = "assistant"

    def __init__(self, state: DialogueState) -> None:
        self.state = state.to_dict()


def test_two_requests_are_both_acted_on_in_one_reply(manager: DialogueManager,
                                                     tmp_path: Path) -> None:
    plan = manager.plan("Where is order 5521, and when are you open on Saturday?",
                        user="ann", home=tmp_path)
    assert plan.trace.decided_by == "requests"
    assert [r["message"] for r in plan.trace.requests] == [
        "Where is order 5521", "when are you open on Saturday?"]
    assert [r["intent"]["intent"] for r in plan.trace.requests] == ["order_status",
                                                                   "opening_hours"]
    assert [s.action for s in plan.trace.steps] == ["call_tool:lookup_order", "answer",
                                                    "look_up", "answer"]
    assert plan.text is not None and "FedEx" in plan.text and "Saturday" in plan.text
    assert plan.trace.to_dict()["requests"] == plan.trace.requests


def test_the_request_that_needs_a_detail_is_asked_last_and_stays_pending(
        manager: DialogueManager, tmp_path: Path) -> None:
    plan = manager.plan("I'd like to return something, and when are you open on Sunday?",
                        user="ann", home=tmp_path)
    assert plan.text is not None and plan.text.endswith(
        manager.domain.spec.slots["order_number"].question)
    assert plan.state.intent == "return_request" and plan.state.requested == "order_number"
    follow = manager.plan("5521", user="ann", home=tmp_path, turns=[_Said(plan.state)])
    assert follow.trace.requests == [] and follow.state.slots["order_number"] == 5521


def test_two_requests_that_both_need_details_ask_which_first(
        manager: DialogueManager, tmp_path: Path) -> None:
    plan = manager.plan("Where is my order and I want to return something", user="ann",
                        home=tmp_path)
    assert plan.text is not None and "which shall we start with" in plan.text
    assert plan.state.requested is None and plan.trace.tool_calls == []


@pytest.mark.parametrize("message", [
    "I want to return the lamp and get a refund",  # one request with an "and"
    "How quick is express shipping and what does it cost?",  # "it": the same request
    "Where is order 5521?",
])
def test_one_request_is_not_split(manager: DialogueManager, tmp_path: Path,
                                  message: str) -> None:
    plan = manager.plan(message, user="ann", home=tmp_path)
    assert plan.trace.requests == [] and plan.trace.decided_by != "requests"


def test_an_answer_to_our_question_is_never_split(manager: DialogueManager,
                                                  tmp_path: Path) -> None:
    asked = DialogueState(intent="order_status", requested="order_number")
    plan = manager.plan("5521 and when are you open on Saturday?", user="ann",
                        home=tmp_path, turns=[_Said(asked)])
    assert plan.trace.requests == []


def test_small_talk_around_a_request_keeps_the_request_s_own_words(
        manager: DialogueManager, tmp_path: Path) -> None:
    plan = manager.plan("Thanks a lot, and where is order 5521?", user="ann", home=tmp_path)
    assert plan.text is None  # the model answers the thanks …
    assert plan.prefix is not None and "FedEx" in plan.prefix  # … after the order's answer
    assert [r["message"] for r in plan.trace.requests] == ["Thanks a lot",
                                                           "where is order 5521?"]


def test_requests_the_model_must_answer_are_answered_in_one_go_with_the_fixed_ones(
        tmp_path: Path) -> None:
    (tmp_path / "domain.yaml").write_text(textwrap.dedent("""\
        name: desk
        understanding: {confidence_threshold: 0.5, llm_fallback: false}
        intents:
          weather: {examples: [what's the weather like, will it rain today, is it sunny,
                               how cold is it outside, weather forecast please]}
          joke: {examples: [tell me a joke, make me laugh, say something funny,
                            do you know any jokes, I want to hear a joke]}
          hours: {examples: [when are you open, what are your opening hours,
                             are you open on sunday, what time do you close]}
        templates: {hours: "We are open 9 to 5."}
        """))
    desk = load_domain(tmp_path / "domain.yaml")
    manager = DialogueManager(desk, engine=ScriptedEngine(lambda prompt, adapter: "x"))
    plan = manager.plan("Tell me a joke please. When are you open on Sunday?", user="ann",
                        home=tmp_path)
    assert plan.trace.decided_by == "requests" and len(plan.trace.requests) == 2
    assert plan.text is None and plan.trace.response == "generated"
    assert plan.prefix == "We are open 9 to 5."
    assert [e.text for e in plan.evidence if e.kind == "answer"] == [
        "Already answered: We are open 9 to 5."]
