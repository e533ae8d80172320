"""``dialoop simulate`` on store_support, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from dialoop.cli import cli
from dialoop.dialogue.domain import Domain
from dialoop.policy.mdp import MDP
from dialoop.policy.registry import LinearModel, PolicyRegistry

STORE = str(Path(__file__).resolve().parents[2] / "examples" / "store_support" / "domain.yaml")


def _simulate(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["simulate", "--domain", STORE, "--dialogues", "30",
                                      "--seed", "4", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else {"text": result.stdout}


def test_simulate_reports_success_turns_reward_and_hand_offs(
    store_domain: Domain, dialoop_home: Path,
) -> None:
    rule = _simulate("--noise", "0.2", "--json")
    assert rule["policy"] == "rule" and rule["dialogues"] == 30
    assert rule["noise"] == {"intent": 0.2, "value": 0.2, "goal_change": 0.2, "impatience": 0.2}
    assert 0.7 <= rule["task_success"] <= 1.0
    assert rule["average_turns"] >= 1.0 and 0.0 < rule["hand_off_rate"] < 1.0
    assert sum(rule["ended"].values()) == 30

    text = _simulate("--noise", "0.2")["text"]
    assert "rule policy · store_support · 30 simulated dialogues" in text
    assert f"task success   {rule['task_success']:.3f}" in text

    # a stored version that hands every conversation off does worse than the rules
    mdp = MDP.of(store_domain)
    bias = np.zeros(len(mdp.actions))
    bias[mdp.actions.index("hand_off")] = 1.0
    PolicyRegistry(dialoop_home).add(
        store_domain, LinearModel(np.zeros((len(mdp.actions), len(mdp.state_names))), bias),
        method="test")
    bad = _simulate("--noise", "0.2", "--policy", "v1", "--json")
    assert bad["policy"] == "store_support@v1" and bad["hand_off_rate"] == 1.0
    assert bad["task_success"] < rule["task_success"]
    assert bad["average_reward"] < rule["average_reward"]


def test_an_unknown_policy_version_is_one_clear_error() -> None:
    result = CliRunner().invoke(cli, ["simulate", "--domain", STORE, "--policy", "v7"])
    assert result.exit_code == 1
    assert "No policy store_support@v7" in str(result.exception)
