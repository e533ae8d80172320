"""Policy versions: stored, listed, served and rolled back; loaded as a manager's policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dialoop.dialogue.domain import Domain, load_domain
from dialoop.dialogue.policy import Features
from dialoop.engine.embedding import Embedder
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.policy.mdp import MDP
from dialoop.policy.registry import LinearModel, PolicyRegistry
from dialoop.policy.simulation import Simulation
from dialoop.policy.simulator import Noise


def always(mdp: MDP, action: str) -> LinearModel:
    """A linear policy that always chooses ``action``."""
    bias = np.zeros(len(mdp.actions))
    bias[mdp.actions.index(action)] = 1.0
    return LinearModel(np.zeros((len(mdp.actions), len(mdp.state_names))), bias)


def features() -> Features:
    return Features(intent="order_status", confident=True, out_of_domain=False, missing=(),
                    needs_confirmation=False, denied=False, acted=None, tool_failed=False,
                    evidence_found=False, handed_off=False)


def test_save_list_serve_and_roll_back(tiny_domain: Domain, dialoop_home: Path) -> None:
    registry = PolicyRegistry(dialoop_home)
    mdp = MDP.of(tiny_domain)
    v1 = registry.add(tiny_domain, always(mdp, "hand_off"), method="test",
                      report={"task_success": 0.3})
    v2 = registry.add(tiny_domain, always(mdp, "call_tool:lookup_order"), method="test")
    assert (v1.key, v2.key) == ("tiny@v1", "tiny@v2")
    assert [(v.version, v.status, v.format) for v in registry.versions("tiny")] == [
        (1, "candidate", "linear"), (2, "candidate", "linear")]
    assert registry.serving("tiny") is None
    assert (dialoop_home / "policies" / "tiny" / "v2" / "policy.npz").is_file()

    registry.promote("tiny", 1)
    registry.promote("tiny", 2)
    assert registry.serving("tiny").version == 2
    decision = registry.load(tiny_domain).decide(features())  # the serving one
    assert (decision.action, decision.policy) == ("call_tool:lookup_order", "tiny@v2")
    assert registry.load(tiny_domain, "v1").decide(features()).action == "hand_off"

    registry.rollback("tiny", 1)
    assert registry.serving("tiny").version == 1
    assert registry.load(tiny_domain, "serving").decide(features()).action == "hand_off"
    registry.rollback("tiny", None)  # back to the rules
    assert registry.serving("tiny") is None
    with pytest.raises(NotFoundError, match="No policy version serves"):
        registry.load(tiny_domain)
    assert [v.report for v in PolicyRegistry(dialoop_home).versions("tiny")][0] == {
        "task_success": 0.3}  # all of it is on disk


def test_what_cannot_be_served_is_refused(tiny_domain: Domain, dialoop_home: Path,
                                          write_domain, tiny_text: str) -> None:  # type: ignore[no-untyped-def]
    registry = PolicyRegistry(dialoop_home)
    mdp = MDP.of(tiny_domain)
    registry.add(tiny_domain, always(mdp, "answer"), method="test")
    with pytest.raises(InvalidInputError, match="never served"):
        registry.rollback("tiny", 1)
    registry.reject("tiny", 1)
    with pytest.raises(InvalidInputError, match="was rejected"):
        registry.promote("tiny", 1)
    with pytest.raises(NotFoundError, match="No policy tiny@v9"):
        registry.load(tiny_domain, "v9")
    with pytest.raises(InvalidInputError, match="Invalid policy version"):
        registry.load(tiny_domain, "latest")
    with pytest.raises(InvalidInputError, match="weights"):
        registry.add(tiny_domain, LinearModel(np.zeros((2, 2)), np.zeros(2)), method="test")
    # the domain gained an intent: the stored layout no longer fits
    changed = load_domain(write_domain(tiny_text.replace(
        "  chit_chat:", "  weather:\n    examples: [is it raining, is it sunny today]\n  chit_chat:")))
    with pytest.raises(InvalidInputError, match="another layout of domain 'tiny'"):
        registry.load(changed, 1)


def test_a_stable_baselines3_model_is_stored_and_decides(
    tiny_domain: Domain, embedder: Embedder, dialoop_home: Path,
) -> None:
    from stable_baselines3 import PPO

    from dialoop.policy.env import DialogueEnv

    with Simulation(tiny_domain, noise=Noise(), seed=0, embedder=embedder) as sim:
        env = DialogueEnv(sim)
        model = PPO("MlpPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0,
                    device="cpu")
        model.learn(32)
        env.close()
        row = PolicyRegistry(dialoop_home).add(tiny_domain, model, method="rl:PPO")
        policy = PolicyRegistry(dialoop_home).load(tiny_domain, row.version)
        x = sim.mdp.vector(features())
        expected = sim.mdp.actions[int(model.predict(x, deterministic=True)[0])]
        assert row.format == "sb3:PPO"
        assert policy.decide(features()).action == expected
        report = sim.run_many(5, policy)  # the manager serves it like any policy
    assert report.policy == "tiny@v1" and len(report.dialogues) == 5
