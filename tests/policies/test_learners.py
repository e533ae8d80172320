"""The supervised and RL learners on the tiny domain: each beats a deliberately bad policy."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dialoop.dialogue.domain import Domain
from dialoop.engine.embedding import Embedder
from dialoop.errors import InvalidInputError
from dialoop.policy.learners import as_policy, simulate, train, train_rl, train_supervised
from dialoop.policy.mdp import MDP
from dialoop.policy.registry import PolicyRegistry
from tests.policies.conftest import always

NOISE = 0.2


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("dialoop.dialogue.manager").setLevel(logging.CRITICAL)



def success(domain: Domain, policy: object, embedder: Embedder) -> float:
    return simulate(domain, policy, dialogues=60, noise=NOISE, seed=77,
                    embedder=embedder).success_rate


def test_supervised_learns_the_rules_from_stories_and_simulated_dialogues(
    tiny_domain: Domain, embedder: Embedder,
) -> None:
    mdp = MDP.of(tiny_domain)
    model, report = train_supervised(tiny_domain, dialogues=40, noise=NOISE, seed=0,
                                     embedder=embedder)
    assert report["sources"]["simulated"] > 40 and report["training_agreement"] >= 0.95
    learned = success(tiny_domain, as_policy(mdp, model, "supervised"), embedder)
    bad = success(tiny_domain, as_policy(mdp, always(mdp, "clarify:more"), "bad"), embedder)
    rule = success(tiny_domain, "rule", embedder)
    assert bad < 0.2
    assert learned >= rule - 0.05 and learned > bad + 0.5


def test_supervised_learns_from_logged_sessions(
    tiny_domain: Domain, embedder: Embedder, dialoop_home: Path,
) -> None:
    """A session's traces are demonstrations: decisions a policy made while serving."""
    from dialoop.assistant import open_assistant
    from tests.fakes import FakeEngine

    mdp = MDP.of(tiny_domain)
    PolicyRegistry(dialoop_home).add(tiny_domain, always(mdp, "hand_off"), method="test")
    with open_assistant(engine=FakeEngine(), domain=tiny_domain, policy="v1") as bot:
        session = bot.session(None)
        for text in ("where is my order 1234", "hello"):
            bot.ask(text, session=session)
    _, report = train_supervised(tiny_domain, dialogues=0, home=dialoop_home,
                                 embedder=embedder)
    assert report["sources"]["sessions"] >= 2  # one hand-off per turn, from the traces


def test_rl_from_scratch_beats_a_deliberately_bad_policy(
    tiny_domain: Domain, embedder: Embedder,
) -> None:
    """No warm start: PPO alone, a few hundred decisions on the simulator."""
    mdp = MDP.of(tiny_domain)
    model, report = train_rl(tiny_domain, steps=512, warm_dialogues=0, noise=NOISE, seed=0,
                             learning_rate=1e-3, embedder=embedder)
    assert report["steps"] >= 512 and report["warm_start"] is None
    learned = success(tiny_domain, as_policy(mdp, model, "rl"), embedder)
    bad = success(tiny_domain, as_policy(mdp, always(mdp, "hand_off"), "bad"), embedder)
    assert bad < 0.5
    assert learned > bad + 0.3


def test_rl_warm_started_from_the_rules_keeps_their_success_and_can_be_stored(
    tiny_domain: Domain, embedder: Embedder, dialoop_home: Path,
) -> None:
    model, report = train_rl(tiny_domain, dialogues=30, warm_dialogues=40, noise=NOISE,
                             seed=1, evaluate_every=15, eval_dialogues=30, embedder=embedder)
    assert report["warm_start"]["agreement"] >= 0.95
    assert report["dialogues"] == 30 and [p["dialogues"] for p in report["curve"]] == [0, 15, 30]
    row = PolicyRegistry(dialoop_home).add(tiny_domain, model, method="rl", report=report)
    stored = PolicyRegistry(dialoop_home).load(tiny_domain, row.version)
    assert success(tiny_domain, stored, embedder) >= success(tiny_domain, "rule", embedder) - 0.05


def test_an_unknown_method_is_one_clear_error(tiny_domain: Domain) -> None:
    with pytest.raises(InvalidInputError, match="choose one of supervised, rl, irl"):
        train("magic", tiny_domain)


def test_on_store_support_a_supervised_version_passes_the_gate_and_serves(
    store_domain: Domain, embedder: Embedder, dialoop_home: Path,
) -> None:
    """Integration: the real domain, its simulator and its holdout dialogues."""
    from dialoop.cli.train import _test_scorer
    from dialoop.policy.gate import GateSettings, gate

    model, report = train_supervised(store_domain, dialogues=60, noise=NOISE,
                                     embedder=embedder)
    assert report["sources"]["stories"] > 0 and report["training_agreement"] >= 0.97
    registry = PolicyRegistry(dialoop_home)
    row = registry.add(store_domain, model, method="supervised", report=report)
    holdout = Path(__file__).resolve().parents[2] / "examples" / "store_support" / "holdout.yaml"
    verdict = gate(registry, store_domain, row.version, GateSettings(dialogues=40),
                   score_tests=_test_scorer(store_domain, [holdout], embedder),
                   embedder=embedder)
    g = verdict.report["gate"]
    assert verdict.promoted, g["reasons"]
    assert g["tests"]["baseline"] == pytest.approx(12 / 13, abs=0.001)  # docs/dialogue.md
    assert g["tests"]["candidate"] >= g["tests"]["baseline"] - 0.05
    assert registry.serving(store_domain.name).version == row.version  # type: ignore[union-attr]
