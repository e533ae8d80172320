"""Slot filling and state tracking: values found, carried, corrected and confirmed."""

from __future__ import annotations

import pytest

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.state import (
    DialogueState,
    advance,
    affirms,
    denies,
    extract_slots,
)

PRODUCTS = {"Aurora Kettle": ["Aurora Kettle", "kettle"], "Stratus Lamp": ["Stratus Lamp", "lamp"]}


def products(kind: str) -> dict[str, list[str]]:
    return PRODUCTS if kind == "product" else {}


@pytest.mark.parametrize(("message", "expected"), [
    ("Where is order 5521?", {"order_number": 5521}),
    ("no, order 5521, not 5512", {"order_number": 5521}),
    ("not 5512 but 5521", {"order_number": 5521}),
    ("5512 is wrong, it's 5521", {"order_number": 5521}),
    ("it's 5521 instead of 5512", {"order_number": 5521}),
    ("I ordered 2 kettles", {}),  # 2 is no order number (4 to 6 digits)
    ("my email is Ann@Example.com", {"email": "ann@example.com"}),
    ("the lamp is too small", {"reason": "wrong_size"}),
    ("it arrived cracked", {"reason": "damaged"}),
    ("it's not damaged, I just changed my mind", {"reason": "changed_mind"}),
])
def test_slot_values_are_found_and_taken_back_values_skipped(
    store_domain: Domain, message: str, expected: dict
) -> None:
    found = extract_slots(message, store_domain, ["order_number", "email", "reason"])
    assert found == expected


def test_entity_slots_match_names_and_aliases(store_domain: Domain) -> None:
    assert extract_slots("is the kettle any good", store_domain, ["product"],
                         entities=products) == {"product": "Aurora Kettle"}
    assert extract_slots("tell me about the stratus lamp", store_domain, ["product"],
                         entities=products) == {"product": "Stratus Lamp"}
    assert extract_slots("tell me about the toaster", store_domain, ["product"],
                         entities=products) == {}


def test_yes_and_no() -> None:
    assert affirms("yes please") and affirms("Correct.") and affirms("ok go ahead")
    assert denies("no") and denies("No, the order is 5512") and denies("nope")
    assert not affirms("no") and not denies("yes") and not affirms("maybe")


def step(domain: Domain, before: DialogueState, message: str, intent: str | None,
         confidence: float = 0.9, *, slots: list[str] | None = None):
    names = slots if slots is not None else [*domain.intent_slots(intent),
                                              *domain.intent_slots(before.intent)]
    if before.requested:
        names.append(before.requested)
    found = extract_slots(message, domain, names, requested=before.requested)
    return advance(before, domain, message, intent=intent, confidence=confidence,
                   out_of_domain=intent == "out_of_scope", found=found)


def test_an_answer_to_our_question_carries_the_goal_on(store_domain: Domain) -> None:
    first = step(store_domain, DialogueState(), "where is my order", "order_status")
    state = first.state
    assert state.intent == "order_status" and state.missing(store_domain) == ["order_number"]
    state.requested = "order_number"  # what the assistant's question does
    # A bare number looks like nothing to the classifier (here: out of scope, unsure).
    second = step(store_domain, state, "5521", "out_of_scope", 0.38)
    assert second.continued and second.intent == "order_status"
    assert second.state.slots == {"order_number": 5521}
    assert not second.out_of_domain


def test_a_correction_replaces_the_value_and_says_what_it_replaced(store_domain: Domain) -> None:
    before = DialogueState(intent="order_status", slots={"order_number": 5512})
    understood = step(store_domain, before, "no, order 5521, not 5512", "order_status", 0.6)
    assert understood.state.slots["order_number"] == 5521
    assert [u.to_dict() for u in understood.updates] == [
        {"slot": "order_number", "value": 5521, "replaces": 5512}]


def test_values_carry_over_to_a_new_goal(store_domain: Domain) -> None:
    before = DialogueState(intent="order_status", slots={"order_number": 6120})
    understood = step(store_domain, before, "I want to return it, it's too big",
                      "return_request", 0.8)
    assert not understood.continued
    assert understood.state.intent == "return_request"
    assert understood.state.slots == {"order_number": 6120, "reason": "wrong_size"}
    assert understood.state.missing(store_domain) == ["email"]


def test_a_confident_new_intent_with_a_value_switches_goal(store_domain: Domain) -> None:
    before = DialogueState(intent="order_status", slots={"order_number": 5521})
    understood = step(store_domain, before, "I want to return order 5512, it's broken",
                      "return_request", 0.7)
    assert understood.intent == "return_request" and not understood.continued


def test_an_unsure_turn_does_not_change_the_goal(store_domain: Domain) -> None:
    before = DialogueState(intent="order_status", slots={"order_number": 5521})
    understood = step(store_domain, before, "hmm what about that", "chit_chat", 0.2)
    assert not understood.confident
    assert understood.state.intent == "order_status"


def test_confirmation_yes_no_and_a_changed_value(store_domain: Domain) -> None:
    values = {"order_number": 7342, "email": "eve@example.com", "reason": "changed_mind"}
    asking = DialogueState(intent="return_request", slots=dict(values), confirming=dict(values))
    assert asking.needs_confirmation(store_domain)
    yes = step(store_domain, asking, "yes", "chit_chat", 0.64)
    assert yes.continued and yes.affirmed
    assert not yes.state.needs_confirmation(store_domain)
    no = step(store_domain, asking, "no", "chit_chat", 0.6)
    assert no.denied and no.state.needs_confirmation(store_domain)
    fixed = step(store_domain, asking, "no, it's order 7324, not 7342", "order_status", 0.72)
    assert fixed.continued and fixed.intent == "return_request"
    assert fixed.state.slots["order_number"] == 7324
    assert fixed.state.needs_confirmation(store_domain)  # new values: read them back again


def test_the_state_survives_a_round_trip_through_json(store_domain: Domain) -> None:
    state = DialogueState(intent="return_request", slots={"order_number": 7342},
                          requested="email", confirmed=None, handed_off=True, turns=3)
    assert DialogueState.from_dict(state.to_dict()) == state
    assert DialogueState.from_dict(None) == DialogueState()
    assert "order number: 7342" in state.summary(store_domain)


def test_date_slots_read_iso_relative_and_written_dates() -> None:
    import datetime as dt

    from dialoop.dialogue.domain import DomainSpec, IntentSpec, SlotSpec

    domain = Domain(DomainSpec(name="d", intents={"book": IntentSpec(examples=["book"])},
                               slots={"day": SlotSpec(type="date")}))
    today = dt.date.today()
    assert extract_slots("on 2025-03-14 please", domain, ["day"]) == {"day": "2025-03-14"}
    assert extract_slots("tomorrow works", domain, ["day"]) == {
        "day": (today + dt.timedelta(days=1)).isoformat()}
    assert extract_slots("March 3 would be fine", domain, ["day"]) == {
        "day": dt.date(today.year, 3, 3).isoformat()}
    assert extract_slots("the 3rd of March", domain, ["day"]) == {
        "day": dt.date(today.year, 3, 3).isoformat()}
    assert extract_slots("whenever suits you", domain, ["day"]) == {}
    assert extract_slots("may I come by?", domain, ["day"]) == {}
