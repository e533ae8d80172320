"""The online learner (dialoop.policy.online): learns a hidden preference of simulated
users, explores within its cap, keeps each user's state to that user, is off by default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dialoop.assistant import open_assistant
from dialoop.config import load_settings
from dialoop.dialogue.domain import Domain, load_domain
from dialoop.dialogue.policy import Features, RulePolicy
from dialoop.engine.embedding import Embedder
from dialoop.errors import ConfigError
from dialoop.policy.online import (
    EXPLORATION_CAP,
    OnlineLearner,
    OnlinePolicy,
    Preference,
    benchmark,
)
from tests.fakes import ScriptedEngine
from tests.policies.conftest import TINY, write_tiny

torch.set_num_threads(1)

# An over-cautious starting point: below 0.8 the rules ask "is it about A or B?", and the
# simulated users repeat themselves until they run out of turns. They dislike that question.
CAUTIOUS = TINY.replace("confidence_threshold: 0.4", "confidence_threshold: 0.8")


@pytest.fixture(scope="module")
def cautious(tmp_path_factory: pytest.TempPathFactory) -> Domain:
    return load_domain(write_tiny(tmp_path_factory.mktemp("cautious"), CAUTIOUS))


def _features(intent: str = "chit_chat", confident: bool = False) -> Features:
    return Features(intent=intent, confident=confident, out_of_domain=False, missing=(),
                    needs_confirmation=False, denied=False, acted=None, tool_failed=False,
                    evidence_found=False, handed_off=False)


def _step(action: str, f: Features) -> dict:
    return {"action": action, "features": f.to_dict()}


def test_learns_the_hidden_preference_and_beats_the_rules_within_40_dialogues(
        cautious: Domain, embedder: Embedder, tmp_path: Path) -> None:
    result = benchmark(cautious, dialogues=40, window=20, exploration=0.2, seed=0,
                       embedder=embedder, plot=tmp_path / "online.png")
    rule, online = result["rule"], result["online"]
    assert rule["success"] < 0.5  # the rules keep asking what the users already said
    assert online["window_success"][1] >= rule["window_success"][1] + 0.3
    assert online["window_reward"][1] > rule["window_reward"][1] + 5
    assert result["exceeds_after"] is not None and result["exceeds_after"] <= 40
    # The regret curve flattens: over the last 20 dialogues it grows far slower than the rules'.
    late = [run["regret"][-1] - run["regret"][19] for run in (online, rule)]
    assert late[0] < late[1] / 2
    assert 0 < result["explored"] <= EXPLORATION_CAP + 0.05
    assert (tmp_path / "online.png").stat().st_size > 10_000


def test_a_learned_alternative_replaces_the_rule_only_where_it_was_better(
        cautious: Domain, tmp_path: Path) -> None:
    learner = OnlineLearner(cautious, tmp_path, scope="global", exploration=0.0)
    policy = OnlinePolicy(RulePolicy(cautious), learner)
    unsure = _features("chit_chat", confident=False)
    assert policy.decide(unsure).action == "clarify"  # nothing learned: the rules decide
    for _ in range(3):
        learner.learn(None, [_step("clarify:intent", unsure)], reward=-12)
        learner.learn(None, [_step("answer", unsure)], reward=12)
    decision = policy.decide(unsure)
    assert decision.action == "answer" and decision.policy == "online"
    assert "learned better" in decision.why
    # An order question asked unsure is another context: "answer" was never tried there.
    assert policy.decide(_features("order_status", confident=True)).action == \
        "call_tool:lookup_order"


def test_exploration_never_exceeds_the_rate_and_is_zero_when_off(
        cautious: Domain, tmp_path: Path) -> None:
    rule = RulePolicy(cautious)
    for rate in (0.0, 0.05, EXPLORATION_CAP):
        learner = OnlineLearner(cautious, tmp_path / str(rate), exploration=rate, seed=3)
        policy = OnlinePolicy(rule, learner)
        with learner.serving("ann"):
            actions = [policy.decide(_features()).action for _ in range(2000)]
        explored = sum(a != "clarify" for a in actions)
        assert explored == learner.explored
        assert explored <= (rate + 0.02) * 2000
        assert (explored > 0) == (rate > 0)
    with pytest.raises(ConfigError, match="between 0 and 0.2"):
        OnlineLearner(cautious, tmp_path, exploration=0.3)
    with pytest.raises(ConfigError, match="policy_online_exploration"):
        load_settings(policy_online_exploration=0.5)


def test_a_users_feedback_never_reaches_another_user(cautious: Domain, tmp_path: Path) -> None:
    learner = OnlineLearner(cautious, tmp_path, scope="user", exploration=0.0)
    policy = OnlinePolicy(RulePolicy(cautious), learner)
    unsure = _features()
    for _ in range(3):
        learner.learn("ann", [_step("answer", unsure)], reward=12)
        learner.learn("ann", [_step("clarify:intent", unsure)], reward=-12)
    with learner.serving("ann"):
        assert policy.decide(unsure).action == "answer"
    with learner.serving("bob"):
        assert policy.decide(unsure).action == "clarify"
    assert policy.decide(unsure).action == "clarify"  # no user known: the rules, unchanged
    assert learner.observations("ann") == 6 and learner.observations("bob") == 0
    files = sorted(p.name for p in learner.folder.iterdir())
    assert files == [f"{learner.key('ann')}.npz"]
    # Persisted: a new process (a new learner) knows what ann taught, and only for ann.
    again = OnlineLearner(cautious, tmp_path, scope="user", exploration=0.0)
    assert again.observations("ann") == 6 and again.observations("bob") == 0
    # In the global scope everyone shares one bandit.
    shared = OnlineLearner(cautious, tmp_path / "g", scope="global", exploration=0.0)
    shared.learn("ann", [_step("answer", unsure)], reward=12)
    assert shared.observations("bob") == 1


def test_off_by_default_and_on_when_an_admin_enables_it(
        cautious: Domain, dialoop_home: Path) -> None:
    assert load_settings().policy_online is False
    engine = ScriptedEngine(lambda prompt, adapter: "hi")
    with open_assistant(load_settings(), engine=engine, domain=cautious) as bot:
        assert bot.online is None and not isinstance(bot.manager.policy, OnlinePolicy)
    with open_assistant(load_settings(policy_online=True, policy_online_exploration=0.1),
                        engine=engine, domain=cautious) as bot:
        assert isinstance(bot.manager.policy, OnlinePolicy)
        assert bot.online is not None and bot.online.exploration == 0.1
    with open_assistant(load_settings(policy_online=True), engine=engine) as bot:
        assert bot.online is None  # the general assistant has no dialogue policy to learn


def test_a_domain_that_forbids_online_learning_keeps_its_policy_when_the_admin_enables_it(
        tmp_path: Path, dialoop_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    frozen = load_domain(write_tiny(tmp_path, CAUTIOUS.replace(
        "policy:\n", "policy:\n  online: false\n", 1)))
    assert frozen.spec.policy.online is False
    engine = ScriptedEngine(lambda prompt, adapter: "hi")
    with open_assistant(load_settings(policy_online=True), engine=engine, domain=frozen) as bot:
        assert bot.online is None and not isinstance(bot.manager.policy, OnlinePolicy)
    assert "forbids online policy learning" in caplog.text


def test_preference_rates_the_disliked_question_down_and_quick_success_up() -> None:
    twice = Preference(disliked=("clarify:confirm",), times=2)
    assert twice.rating(["clarify:confirm", "call_tool:x"], success=True, turns=2) == 1
    assert twice.rating(["clarify:confirm"] * 2, success=True, turns=3) == -1
    assert Preference().rating(["answer"], success=True, turns=5) == 0
