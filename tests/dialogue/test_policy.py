"""The rule policy follows the domain file; the learned policy learns the same choices."""

from __future__ import annotations

import pytest

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.policy import Features, LearnedPolicy, RulePolicy, make_policy, replay
from dialoop.errors import ConfigError


def features(**given: object) -> Features:
    base = {"intent": "order_status", "confident": True, "out_of_domain": False, "missing": (),
            "needs_confirmation": False, "denied": False, "acted": None, "tool_failed": False,
            "evidence_found": False, "handed_off": False}
    return Features(**{**base, **given})


@pytest.mark.parametrize(("given", "action", "why"), [
    ({}, "call_tool:lookup_order", "order status comes from the orders system"),
    ({"missing": ("order_number",)}, "clarify", "a detail the request needs is missing"),
    ({"acted": "call_tool:lookup_order"}, "answer", "the tool has answered"),
    ({"acted": "call_tool:lookup_order", "tool_failed": True}, "answer", "the tool failed"),
    ({"confident": False}, "clarify", "not sure what the customer wants"),
    ({"intent": "out_of_scope", "out_of_domain": True}, "answer", "not about the store"),
    ({"intent": "talk_to_person"}, "hand_off", "asked for a person"),
    ({"handed_off": True}, "hand_off", "a person has taken over"),
    ({"intent": "return_request", "needs_confirmation": True}, "clarify", "yes first"),
    ({"intent": "return_request"}, "call_tool:start_return", "confirmed the return"),
    ({"intent": "shipping_cost"}, "look_up", "rest on the facts"),
    ({"intent": "shipping_cost", "acted": "look_up", "evidence_found": True}, "answer",
     "looked up"),
    ({"intent": "chit_chat"}, "answer", "small talk"),
])
def test_rules_decide_in_order_and_say_which_rule(
    store_domain: Domain, given: dict, action: str, why: str
) -> None:
    decision = RulePolicy(store_domain).decide(features(**given))
    assert decision.action == action
    assert why in decision.why and decision.why.startswith("rule ")


def test_the_learned_policy_reproduces_the_stories_and_explains_itself(
    store_domain: Domain,
) -> None:
    learned = LearnedPolicy(store_domain)
    rules = RulePolicy(store_domain)
    assert learned.examples > 50 and learned.accuracy == 1.0
    for story in store_domain.stories:
        for f, label in replay(store_domain, story):
            decision = learned.decide(f)
            assert decision.action == label == rules.decide(f).action, (story.name, f)
    decision = learned.decide(features())
    assert decision.why.startswith("learned policy (p=1.00): ")
    assert "intent=order_status" in decision.why


def test_the_learned_policy_defers_to_the_rules_when_unsure(store_domain: Domain) -> None:
    learned = LearnedPolicy(store_domain)
    learned.backoff = 1.01  # nothing is ever sure enough
    decision = learned.decide(features(intent="talk_to_person"))
    assert decision.action == "hand_off"
    assert "learned policy unsure" in decision.why and "rule 7" in decision.why


def test_a_learned_policy_needs_stories(store_domain: Domain) -> None:
    with pytest.raises(ConfigError, match="no stories to learn from"):
        LearnedPolicy(store_domain, stories=[])
    with pytest.raises(ConfigError, match="Unknown policy 'neural'"):
        make_policy(store_domain, "neural")
