"""The MDP of a domain: its state vector, its actions and its reward section."""

from __future__ import annotations

import numpy as np
import pytest

from dialoop.dialogue.domain import Domain, load_domain
from dialoop.dialogue.policy import Features
from dialoop.errors import DomainError, InvalidInputError
from dialoop.policy.mdp import MDP, dialogue_reward


def features(**given: object) -> Features:
    base = {"intent": "order_status", "confident": True, "out_of_domain": False, "missing": (),
            "needs_confirmation": False, "denied": False, "acted": None, "tool_failed": False,
            "evidence_found": False, "handed_off": False}
    return Features(**{**base, **given})


def test_the_actions_are_the_policy_actions_with_their_arguments(tiny_domain: Domain) -> None:
    mdp = MDP.of(tiny_domain)
    # no knowledge: no look_up; one tool; a question per target and per slot an intent uses
    assert mdp.actions == ("answer", "hand_off", "call_tool:lookup_order", "clarify:intent",
                           "clarify:confirm", "clarify:change", "clarify:more",
                           "clarify:order_number")
    assert mdp.action(2) == "call_tool:lookup_order"
    assert mdp.index("clarify", features(missing=("order_number",))) == 7
    assert mdp.index("clarify", features(confident=False)) == 3
    # After "no": ask what to change, unless the "no" carried the right value (read back again).
    assert mdp.index("clarify", features(needs_confirmation=True, denied=True)) == 5
    assert mdp.index("clarify", features(needs_confirmation=True, denied=True,
                                         corrected=True)) == 4
    with pytest.raises(InvalidInputError, match="look_up.*is not an action of domain 'tiny'"):
        mdp.index("look_up")
    with pytest.raises(InvalidInputError, match="No action 8"):
        mdp.action(8)


def test_the_state_vector_has_a_fixed_layout_read_from_the_features(tiny_domain: Domain) -> None:
    mdp = MDP.of(tiny_domain)
    assert len(mdp.state_names) == 20
    x = mdp.vector(features(filled=("order_number",), acted="call_tool:lookup_order",
                            tool_failed=True, turns=3, continued=True))
    assert x.shape == (20,) and x.dtype == np.float32
    on = {n for n, v in zip(mdp.state_names, x, strict=True) if v == 1.0}
    assert on == {"intent=order_status", "confident", "continued", "filled order_number",
                  "acted=call_tool:lookup_order", "tool_failed"}
    assert x[mdp.state_names.index("turns")] == pytest.approx(0.3)
    y = mdp.vector(features(intent=None, confident=False, missing=("order_number",), turns=40))
    on = {n for n, v in zip(mdp.state_names, y, strict=True) if v == 1.0}
    assert on == {"intent=none", "missing order_number", "acted=none", "turns"}  # capped at 1


def test_the_reward_comes_from_the_domain_file(tiny_domain: Domain, store_domain: Domain) -> None:
    tiny = tiny_domain.spec.reward
    assert (tiny.success, tiny.failure, tiny.turn, tiny.hand_off, tiny.rating) == (
        10, -4, -0.5, -2, 3)
    assert dialogue_reward(tiny, turns=3, success=True, handed_off=False) == 8.5
    assert dialogue_reward(tiny, turns=2, success=False, handed_off=True, rating=-1) == -10
    defaults = store_domain.spec.reward  # no reward section: the documented defaults
    assert (defaults.success, defaults.failure, defaults.turn, defaults.hand_off) == (
        20, -10, -1, -5)
    with pytest.raises(InvalidInputError, match="between -1 and 1"):
        dialogue_reward(tiny, turns=1, success=True, handed_off=False, rating=4)


@pytest.mark.parametrize(("section", "message"), [
    ("reward: {turn: 1}", r"domain.yaml:\d+: reward.turn: must be 0 or less \(it is 1.0\)"),
    ("reward: {success: -3}", r"reward.success: must be 0 or more \(it is -3.0\)"),
    ("reward: {hand_of: -1}", r"reward.hand_of: unknown key 'hand_of'"),
    ("reward: {failure: lots}", r"reward.failure: Input should be a valid number"),
])
def test_a_bad_reward_section_is_a_clear_error(write_domain, tiny_text: str,  # type: ignore[no-untyped-def]
                                               section: str, message: str) -> None:
    text = tiny_text.replace("reward: {success: 10, failure: -4, turn: -0.5, hand_off: -2, rating: 3}",
                        section)
    with pytest.raises(DomainError, match=message):
        load_domain(write_domain(text))
