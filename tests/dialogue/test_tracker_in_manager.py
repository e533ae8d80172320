"""The values tracker inside the dialogue manager (issue 15): ``understanding.tracker:
values`` fills a domain's enum slots with the schema-driven tracker of MultiWOZ (cue
words, the question just asked, "doesn't matter", "not X"); the default leaves the
manager's own slot rules in charge, as before."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from dialoop.dialogue.domain import Domain, load_domain
from dialoop.dialogue.intent import IntentClassifier
from dialoop.dialogue.manager import DialogueManager, TurnPlan
from dialoop.dialogue.tracker import ValueTracker, domain_schema
from dialoop.engine.embedding import default_embedder
from tests.fakes import FakeEngine

AREA_QUESTION = "Which part of town should it be in?"
PRICE_QUESTION = "What price range would you like?"

DOMAIN = f"""\
    name: eating_out
    understanding: {{confidence_threshold: 0.5, llm_fallback: false{{setting}}}}
    slots:
      area:
        type: enum
        values: {{north: [], south: [], east: [], west: [], centre: [center, central]}}
        cues: [part of town, side of town]
        question: "{AREA_QUESTION}"
      price:
        type: enum
        values: {{cheap: [inexpensive], moderate: [mid priced], expensive: [upmarket]}}
        cues: [price range, prices]
        question: "{PRICE_QUESTION}"
    intents:
      find_restaurant:
        requires: [area, price]
        examples: [I need a restaurant, find me a place to eat, somewhere to have dinner,
                   I'm looking for a restaurant, book a restaurant for tonight]
      inform:
        uses: [area, price]
        examples: [in the north, something cheap, the centre please, expensive,
                   it does not matter, any price is fine, moderate prices]
      chitchat:
        examples: [who are you, are you a robot, how old are you, do you like music]
    templates:
      found: "A {{{{ slots.price }}}} place in the {{{{ slots.area }}}}: Pizza Hut."
    policy:
      rules:
        - {{when: {{missing: true}}, action: clarify}}
        - {{when: {{intent: find_restaurant}}, action: answer, respond: found}}
        - {{when: {{}}, action: answer}}
    """


def _domain(tmp_path: Path, setting: str) -> Domain:
    path = tmp_path / "domain.yaml"
    path.write_text(textwrap.dedent(DOMAIN).replace("{setting}", setting))
    return load_domain(path)


@pytest.fixture(scope="module")
def embedder() -> Any:
    return default_embedder()


def _manager(tmp_path: Path, embedder: Any, setting: str = "") -> DialogueManager:
    domain = _domain(tmp_path, setting)
    return DialogueManager(domain, engine=FakeEngine(),
                           classifier=IntentClassifier(domain, embedder))


class _Said:
    """A stored assistant turn: its reply and the state after it."""

    role = "assistant"

    def __init__(self, plan: TurnPlan) -> None:
        self.content = plan.text or ""
        self.state = plan.state.to_dict()


def _talk(manager: DialogueManager, *messages: str) -> list[TurnPlan]:
    turns: list[_Said] = []
    plans = []
    for message in messages:
        plan = manager.plan(message, user="ann", turns=turns)
        plans.append(plan)
        turns.append(_Said(plan))
    return plans


@pytest.fixture
def values(tmp_path: Path, embedder: Any) -> DialogueManager:
    return _manager(tmp_path, embedder, ", tracker: values")


def test_values_are_tracked_over_turns_and_carried(values: DialogueManager) -> None:
    first, second = _talk(values, "I need a restaurant, somewhere cheap",
                          "in the north please")
    assert first.state.slots == {"price": "cheap"}
    assert first.text == AREA_QUESTION
    assert second.state.slots == {"price": "cheap", "area": "north"}
    assert second.text == "A cheap place in the north: Pizza Hut."


def test_one_message_fills_two_slots(values: DialogueManager) -> None:
    (plan,) = _talk(values, "I'm looking for a restaurant somewhere cheap in the north")
    assert plan.state.slots == {"price": "cheap", "area": "north"}


def test_doesnt_matter_is_dontcare_for_the_slot_asked_about(values: DialogueManager) -> None:
    first, second = _talk(values, "find me a restaurant in the north",
                          "it doesn't matter")
    assert first.text == PRICE_QUESTION
    assert second.state.slots == {"area": "north", "price": "dontcare"}
    assert second.state.intent == "find_restaurant"
    assert second.trace.understood["slot_updates"] == [{"slot": "price", "value": "dontcare"}]
    assert "price: no preference" in (second.system or "")


def test_a_correction_replaces_the_value(values: DialogueManager) -> None:
    plans = _talk(values, "I need a restaurant, somewhere cheap", "in the north please",
                  "actually the east")
    assert plans[-1].state.slots == {"price": "cheap", "area": "east"}
    assert plans[-1].trace.understood["slot_updates"] == [
        {"slot": "area", "value": "east", "replaces": "north"}]
    (taken_back,) = _talk(values, "a cheap restaurant, not in the north, in the east")
    assert taken_back.state.slots == {"price": "cheap", "area": "east"}


def test_both_takes_the_rules_value_where_the_tracker_found_none(
        tmp_path: Path, embedder: Any) -> None:
    manager = _manager(tmp_path, embedder, ", tracker: both")
    first, second = _talk(manager, "find me a restaurant in the north", "it doesn't matter")
    assert second.state.slots == {"area": "north", "price": "dontcare"}


def test_the_default_is_the_rules_as_before(tmp_path: Path, embedder: Any) -> None:
    default = _manager(tmp_path, embedder)
    assert default.domain.spec.understanding.tracker == "rules"
    first, second = _talk(default, "I need a restaurant, somewhere cheap", "in the north please")
    assert second.state.slots == {"price": "cheap", "area": "north"}
    # "doesn't matter" is no value: the question is asked again, as before the tracker
    _, again = _talk(default, "find me a restaurant in the north", "it doesn't matter")
    assert again.state.slots == {"area": "north"}
    assert again.state.requested == "price"


def test_the_schema_of_a_domain_file(tmp_path: Path) -> None:
    schema = domain_schema(_domain(tmp_path, ""))
    slots = {s.name: s for s in schema.slots}
    assert set(slots) == {"area", "price"}
    assert slots["area"].values["central"] == "centre"
    assert slots["price"].values["mid priced"] == "moderate"
    assert {"area", "part of town", "which part of town should it be in"} <= set(
        slots["area"].cues)
    tracker = ValueTracker(schema)
    tracker.active = ["eating_out"]
    assert tracker.update("somewhere upmarket", PRICE_QUESTION) == {"price": "expensive"}
    assert tracker.update("whatever", AREA_QUESTION) == {"price": "expensive",
                                                         "area": "dontcare"}


def test_a_trained_gate_named_in_the_domain_decides_what_the_tracker_keeps(
        tmp_path: Path, embedder: Any) -> None:
    from dialoop.dialogue.gate import Turn, train_gate

    domain = _domain(tmp_path, "")
    # annotations that never count "north" as said (and always count the price): the
    # gate learns to drop the one and keep the other
    dialogues = [[Turn(f"somewhere {price} in the north please", "", {"price": price})]
                 for price in ("cheap", "moderate", "expensive") * 40]
    gate = train_gate(ValueTracker(domain_schema(domain)), dialogues)
    gate.save(tmp_path / "gate.joblib")
    gated = _manager(tmp_path, embedder, ", tracker: values, tracker_gate: gate.joblib")
    (plan,) = _talk(gated, "I need a restaurant somewhere cheap in the north")
    assert plan.state.slots == {"price": "cheap"}
    (plan,) = _talk(_manager(tmp_path, embedder, ", tracker: values"),
                    "I need a restaurant somewhere cheap in the north")
    assert plan.state.slots == {"price": "cheap", "area": "north"}
