"""Inverse RL: the learned reward explains the demonstrations, and its policy serves users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.policy import Features
from dialoop.engine.embedding import Embedder
from dialoop.policy.demonstrations import roll_out, rule_teacher
from dialoop.policy.env import DialogueEnv
from dialoop.policy.irl import EmpiricalMDP, maxent_irl, ranks_demonstrated_first, train_irl
from dialoop.policy.mdp import MDP
from dialoop.policy.registry import LinearModel, PolicyRegistry, VectorPolicy
from dialoop.policy.simulation import Simulation
from dialoop.policy.simulator import Noise


@pytest.fixture(scope="module")
def trained(tiny_domain: Domain, embedder: Embedder,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[LinearModel, dict[str, Any]]:
    ticks: list[tuple[int, int]] = []
    logs = tmp_path_factory.mktemp("runs")
    model, report = train_irl(tiny_domain, seed=0, dialogues=80, steps=80, noise=0.2,
                              embedder=embedder, eval_dialogues=40, log_dir=logs,
                              progress=lambda done, total: ticks.append((done, total)))
    assert ticks[-1][0] == ticks[-1][1] == 80 + 80 + 40  # dialogues, iterations, evaluation
    assert list(logs.glob("events.out.tfevents.*"))  # TensorBoard logs
    return model, report


def _success(domain: Domain, embedder: Embedder, model: LinearModel) -> float:
    """Task success on simulated users the training never met (another seed)."""
    with Simulation(domain, noise=Noise.uniform(0.2), seed=7, embedder=embedder) as sim:
        return sim.run_many(40, VectorPolicy(MDP.of(domain), model.choose, "t")).success_rate


def test_the_irl_policy_serves_users_far_better_than_a_bad_policy(
    trained: tuple[LinearModel, dict[str, Any]], tiny_domain: Domain, embedder: Embedder,
) -> None:
    model, report = trained
    mdp = MDP.of(tiny_domain)
    weights = np.zeros_like(model.weights)
    bias = np.zeros_like(model.bias)
    bias[mdp.index("hand_off")] = 1.0  # hands every user off: fails all but who asked for it
    learned = _success(tiny_domain, embedder, model)
    bad = _success(tiny_domain, embedder, LinearModel(weights, bias))
    assert learned >= bad + 0.4, (learned, bad)
    assert learned >= 0.85
    # The report compares it with the rules on the same held-out users.
    assert report["simulated"]["task_success"] >= report["rule_simulated"]["task_success"] - 0.05


def test_the_learned_reward_ranks_the_demonstrated_actions_first(
    trained: tuple[LinearModel, dict[str, Any]], tiny_domain: Domain,
) -> None:
    _, report = trained
    assert report["reward_ranks_demonstrated_first"] >= 0.85
    assert report["reward_ranks_demonstrated_above_mean"] >= 0.95
    assert report["advantage_ranks_demonstrated_first"] >= 0.95  # the reward, shaped by V
    top = {(w["action"], w["feature"]) for w in report["reward_top_weights"]}
    assert top  # named by action and state entry
    assert all(a in MDP.of(tiny_domain).actions for a, _ in top)


def test_maxent_irl_learns_a_reward_that_prefers_what_the_expert_does(
    tiny_domain: Domain, embedder: Embedder,
) -> None:
    with Simulation(tiny_domain, noise=Noise.uniform(0.2), seed=3, embedder=embedder) as sim:
        env = DialogueEnv(sim)
        teacher = rule_teacher(env.mdp)
        demos = roll_out(env, 40, teacher)
        explored = roll_out(env, 40, teacher, epsilon=0.3, rng=np.random.default_rng(0),
                            start=40)
        env.close()
    mdp = env.mdp
    emdp = EmpiricalMDP.of(demos + explored, len(mdp.actions))
    before = ranks_demonstrated_first(maxent_irl(emdp, demos, len(mdp.actions), iterations=0),
                                      demos)
    reward = maxent_irl(emdp, demos, len(mdp.actions), iterations=100)
    assert before == 0.0  # all-zero reward: no action above another
    assert ranks_demonstrated_first(reward, demos) >= 0.85
    # A user asking for their order without its number: the reward says ask for it.
    f = Features(intent="order_status", confident=True, out_of_domain=False,
                 missing=("order_number",), needs_confirmation=False, denied=False, acted=None,
                 tool_failed=False, evidence_found=False, handed_off=False, turns=1)
    r = reward(mdp.vector(f)[None])[0]
    assert int(np.argmax(r)) == mdp.index("clarify:order_number"), dict(zip(mdp.actions, r, strict=True))


def test_the_irl_policy_is_stored_and_served_like_any_version(
    trained: tuple[LinearModel, dict[str, Any]], tiny_domain: Domain, tmp_path: Path,
) -> None:
    model, report = trained
    registry = PolicyRegistry(tmp_path)
    row = registry.add(tiny_domain, model, method="irl", report=report)
    loaded = registry.load(tiny_domain, row.version)
    rng = np.random.default_rng(0)
    for x in rng.integers(0, 2, (50, len(MDP.of(tiny_domain).state_names))).astype(np.float32):
        assert loaded.choose(x) == model.choose(x)
    assert registry.get(tiny_domain.name, row.version).report["method"] == "irl:maxent"
