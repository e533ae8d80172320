"""The gate: a candidate policy version serves only if it does not do worse.

    verdict = gate(registry, domain, version, GateSettings(dialogues=300, margin=0.02),
                   score_tests=...)
    verdict.promoted, verdict.report

The candidate is compared with what serves now (the promoted version, or the rules
when none is) on the same ``dialogues`` simulated users (same seeds, same noise) and,
when ``score_tests`` is given, on the domain's scripted test dialogues (``dialoop eval
dialogue``'s task success; the caller supplies the scorer because scripted dialogues
run the whole assistant, a layer above this package). It passes if, on each, its task
success is at least the baseline's minus a margin (``margin`` on the simulator,
``test_margin`` on the test dialogues). A passing version is promoted; a failing one
is marked rejected and keeps the report, so ``--list`` shows why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.policy import Policy
from dialoop.errors import ConfigError
from dialoop.policy.registry import PolicyRegistry
from dialoop.policy.simulation import Simulation
from dialoop.policy.simulator import Noise

__all__ = ["GateSettings", "Verdict", "gate", "judge"]

TestScorer = Callable[[Policy | str], float]
"""Task success of a policy on the domain's scripted test dialogues (0 to 1)."""


@dataclass(frozen=True)
class GateSettings:
    dialogues: int = 300
    noise: float = 0.2
    seed: int = 1000  # not the seeds training used (0, …): other users than trained on
    margin: float = 0.02  # simulated task success may drop this much, no more
    test_margin: float = 0.05  # the same on the scripted test dialogues

    def __post_init__(self) -> None:
        if self.dialogues < 1:
            raise ConfigError("The gate needs at least one simulated dialogue (dialogues >= 1).")
        if not (0 <= self.margin <= 1 and 0 <= self.test_margin <= 1):
            raise ConfigError("Gate margins are differences of task success: between 0 and 1.")


@dataclass(frozen=True)
class Verdict:
    promoted: bool
    report: dict[str, Any]


def judge(domain: Domain, candidate: Policy, baseline: Policy | str, settings: GateSettings,
          *, score_tests: TestScorer | None = None, embedder: Any = None) -> dict[str, Any]:
    """Both policies side by side: simulated and scripted task success, and the verdict."""
    report: dict[str, Any] = {"settings": asdict(settings)}
    with Simulation(domain, noise=Noise.uniform(settings.noise), seed=settings.seed,
                    embedder=embedder) as sim:
        base = sim.run_many(settings.dialogues, baseline)
    with Simulation(domain, noise=Noise.uniform(settings.noise), seed=settings.seed,
                    embedder=embedder) as sim:  # a fresh tool world: the same users, same start
        cand = sim.run_many(settings.dialogues, candidate)
    report["baseline"] = base.policy
    report["simulated"] = {"baseline": _summary(base.to_dict()),
                           "candidate": _summary(cand.to_dict())}
    passed = cand.success_rate >= base.success_rate - settings.margin
    reasons = [] if passed else [f"simulated task success {cand.success_rate:.3f} < "
                                 f"{base.success_rate:.3f} - {settings.margin}"]
    if score_tests is not None:
        b, c = score_tests(baseline), score_tests(candidate)
        report["tests"] = {"baseline": round(b, 4), "candidate": round(c, 4)}
        if c < b - settings.test_margin:
            reasons.append(f"test-dialogue task success {c:.3f} < {b:.3f} - "
                           f"{settings.test_margin}")
    report["passed"] = not reasons
    report["reasons"] = reasons
    return report


def gate(registry: PolicyRegistry, domain: Domain, version: int, settings: GateSettings, *,
         score_tests: TestScorer | None = None, embedder: Any = None) -> Verdict:
    """Judge stored ``version`` against what serves now; promote it or reject it."""
    serving = registry.serving(domain.name)
    baseline: Policy | str = "rule" if serving is None else registry.load(domain, serving.version)
    candidate = registry.load(domain, version)
    report = judge(domain, candidate, baseline, settings, score_tests=score_tests,
                   embedder=embedder)
    row = registry.get(domain.name, version)
    full = {**row.report, "gate": report}
    if report["passed"]:
        registry.promote(domain.name, version)
        registry.set_report(domain.name, version, full)
    else:
        registry.reject(domain.name, version, full)
    return Verdict(report["passed"], full)


def _summary(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in ("policy", "dialogues", "task_success", "average_turns",
                              "average_reward", "hand_off_rate")}
