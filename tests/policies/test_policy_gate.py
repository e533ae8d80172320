"""The gate: a better candidate is promoted, a worse one rejected and kept with its report."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dialoop.cli.train import _test_scorer
from dialoop.dialogue.domain import Domain
from dialoop.engine.embedding import Embedder
from dialoop.errors import ConfigError
from dialoop.policy.gate import GateSettings, gate
from dialoop.policy.learners import train_supervised
from dialoop.policy.mdp import MDP
from dialoop.policy.registry import PolicyRegistry
from tests.policies.conftest import always

TESTS = """
dialogues:
  - name: order with its number
    turns:
      - {user: "Has order 1234 shipped?", intent: order_status, slots: {order_number: 1234},
         actions: [call_tool:lookup_order, answer]}
    goal: {tools: {lookup_order: {order_number: 1234}}}
  - name: order, number asked for
    turns:
      - {user: "where is my order", intent: order_status, slots: {}, actions: [clarify:order_number]}
      - {user: "5678", intent: order_status, slots: {order_number: 5678},
         actions: [call_tool:lookup_order, answer]}
    goal: {tools: {lookup_order: {order_number: 5678}}}
"""


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("dialoop.dialogue.manager").setLevel(logging.CRITICAL)



def test_the_gate_promotes_a_better_candidate_and_rejects_a_worse_one(
    tiny_domain: Domain, embedder: Embedder, dialoop_home: Path, tmp_path: Path,
) -> None:
    registry = PolicyRegistry(dialoop_home)
    mdp = MDP.of(tiny_domain)
    tests = tmp_path / "tests.yaml"
    tests.write_text(TESTS)
    scorer = _test_scorer(tiny_domain, [tests], embedder)
    settings = GateSettings(dialogues=40, noise=0.2, margin=0.02)

    # 1. worse than the rules (nothing serves yet): rejected, and the report says why
    bad = registry.add(tiny_domain, always(mdp, "hand_off"), method="test")
    verdict = gate(registry, tiny_domain, bad.version, settings, score_tests=scorer,
                   embedder=embedder)
    assert not verdict.promoted
    g = verdict.report["gate"]
    assert g["baseline"] == "rule"
    assert g["simulated"]["candidate"]["task_success"] < g["simulated"]["baseline"]["task_success"]
    assert g["tests"] == {"baseline": 1.0, "candidate": 0.0}
    assert len(g["reasons"]) == 2
    row = registry.get(tiny_domain.name, bad.version)
    assert row.status == "rejected" and row.report["gate"]["passed"] is False
    assert registry.serving(tiny_domain.name) is None

    # 2. as good as the rules: promoted, it serves
    model, report = train_supervised(tiny_domain, dialogues=40, embedder=embedder)
    good = registry.add(tiny_domain, model, method="supervised", report=report)
    verdict = gate(registry, tiny_domain, good.version, settings, score_tests=scorer,
                   embedder=embedder)
    assert verdict.promoted, verdict.report["gate"]["reasons"]
    assert verdict.report["examples"] == report["examples"]  # training's report is kept
    serving = registry.serving(tiny_domain.name)
    assert serving is not None and serving.version == good.version

    # 3. judged against the version serving now, not the rules
    worse = registry.add(tiny_domain, always(mdp, "clarify:more"), method="test")
    verdict = gate(registry, tiny_domain, worse.version, settings, embedder=embedder)
    assert not verdict.promoted
    assert verdict.report["gate"]["baseline"] == f"tiny@v{good.version}"
    assert registry.serving(tiny_domain.name).version == good.version  # type: ignore[union-attr]


def test_gate_settings_say_how_to_fix_them() -> None:
    with pytest.raises(ConfigError, match="between 0 and 1"):
        GateSettings(margin=2)
    with pytest.raises(ConfigError, match="at least one"):
        GateSettings(dialogues=0)
