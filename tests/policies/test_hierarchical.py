"""The hierarchical policy: its top level routes to the sub-task, its low levels serve users."""

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
from dialoop.policy.hierarchical import HierarchicalModel, subtask_of, train_hierarchical
from dialoop.policy.mdp import MDP
from dialoop.policy.registry import LinearModel, PolicyRegistry, VectorPolicy
from dialoop.policy.simulation import Simulation
from dialoop.policy.simulator import Noise


@pytest.fixture(scope="module")
def trained(tiny_domain: Domain, embedder: Embedder,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[HierarchicalModel, dict[str, Any]]:
    ticks: list[tuple[int, int]] = []
    logs = tmp_path_factory.mktemp("runs")
    model, report = train_hierarchical(tiny_domain, seed=0, dialogues=90, noise=0.2,
                                       embedder=embedder, eval_dialogues=40, log_dir=logs,
                                       progress=lambda done, total: ticks.append((done, total)))
    assert ticks[-1][0] == ticks[-1][1] == 90 + 40
    assert list(logs.glob("events.out.tfevents.*"))  # TensorBoard logs
    return model, report


def _features(intent: str | None, *, confident: bool = True,
              missing: tuple[str, ...] = ()) -> Features:
    return Features(intent=intent, confident=confident, out_of_domain=False, missing=missing,
                    needs_confirmation=False, denied=False, acted=None, tool_failed=False,
                    evidence_found=False, handed_off=False, turns=1)


def test_the_top_level_routes_each_state_to_its_sub_task(
    trained: tuple[HierarchicalModel, dict[str, Any]], tiny_domain: Domain, embedder: Embedder,
) -> None:
    model, report = trained
    mdp = MDP.of(tiny_domain)
    assert model.subtasks == ("unsure", "order_status", "talk_to_person", "chit_chat")
    for intent in ("order_status", "talk_to_person", "chit_chat"):
        x = mdp.vector(_features(intent))
        assert model.subtasks[model.route(x)] == intent
    # On states of users it never met, it routes as the sub-task labels say.
    with Simulation(tiny_domain, noise=Noise.uniform(0.3), seed=11, embedder=embedder) as sim:
        env = DialogueEnv(sim)
        seen = roll_out(env, 30, rule_teacher(mdp))
        env.close()
    pairs = [(x, f) for t in seen for x, f in zip(t.states, t.features, strict=True)]
    right = [model.route(x) == subtask_of(mdp, f) for x, f in pairs]
    assert np.mean(right) >= 0.95
    assert report["top_routing_accuracy"] >= 0.95


def test_each_low_level_chooses_its_own_sub_tasks_actions(
    trained: tuple[HierarchicalModel, dict[str, Any]], tiny_domain: Domain,
) -> None:
    model, report = trained
    mdp = MDP.of(tiny_domain)
    order = model.subs[model.subtasks.index("order_status")]
    person = model.subs[model.subtasks.index("talk_to_person")]
    missing = mdp.vector(_features("order_status", missing=("order_number",)))
    assert mdp.actions[order.choose(missing)] == "clarify:order_number"
    assert mdp.actions[model.choose(mdp.vector(_features("order_status")))] == \
        "call_tool:lookup_order"
    assert mdp.actions[person.choose(mdp.vector(_features("talk_to_person")))] == "hand_off"
    # The person sub-task never learned to call the order tool: it cannot choose it.
    assert person.bias[mdp.index("call_tool:lookup_order")] < -1e5
    assert report["expert_agreement"] >= 0.95


def test_the_hierarchical_policy_serves_users_far_better_than_a_bad_policy(
    trained: tuple[HierarchicalModel, dict[str, Any]], tiny_domain: Domain, embedder: Embedder,
) -> None:
    model, report = trained
    mdp = MDP.of(tiny_domain)
    bias = np.zeros(len(mdp.actions), dtype=np.float32)
    bias[mdp.index("answer")] = 1.0  # answers at once: never calls the tool, never hands off
    bad = LinearModel(np.zeros((len(mdp.actions), len(mdp.state_names)), np.float32), bias)
    with Simulation(tiny_domain, noise=Noise.uniform(0.2), seed=7, embedder=embedder) as sim:
        learned = sim.run_many(40, VectorPolicy(mdp, model.choose, "h")).success_rate
        worse = sim.run_many(40, VectorPolicy(mdp, bad.choose, "bad")).success_rate
    assert learned >= worse + 0.4, (learned, worse)
    assert learned >= 0.85
    assert report["simulated"]["task_success"] >= report["rule_simulated"]["task_success"] - 0.05


def test_the_hierarchical_policy_is_stored_and_served_like_any_version(
    trained: tuple[HierarchicalModel, dict[str, Any]], tiny_domain: Domain, tmp_path: Path,
) -> None:
    model, report = trained
    registry = PolicyRegistry(tmp_path)
    row = registry.add(tiny_domain, model, method="hierarchical", report=report)
    assert row.format == "hierarchical"
    loaded = registry.load(tiny_domain, f"v{row.version}")
    rng = np.random.default_rng(0)
    for x in rng.integers(0, 2, (50, len(MDP.of(tiny_domain).state_names))).astype(np.float32):
        assert loaded.choose(x) == model.choose(x)
    assert loaded.decide(_features("talk_to_person")).action == "hand_off"
