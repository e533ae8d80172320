"""Simulated dialogues between :mod:`~dialoop.policy.simulator` users and the real
:class:`~dialoop.dialogue.manager.DialogueManager`, scored with the domain's reward.

    sim = Simulation(load_domain("examples/store_support/domain.yaml"), noise=Noise.uniform(0.2))
    report = sim.run_many(1000, policy="rule")
    report.success_rate, report.average_turns, report.average_reward, report.hand_off_rate

No language model runs: the manager gets :class:`SilentEngine`, so its LLM intent
fallback finds no choice and an unsure message stays unsure (on store_support's test
dialogues the fallback changes nothing either way); the manager's wording is never
generated, only its decision is read. The intent classifier and the look-up are built
once per simulation and share a memo of sentence embeddings: templated messages
repeat, and an embedding is most of a turn's cost.

The tools run for real, in a home of the simulation's own (a temporary folder unless
given): their world (store_support's orders and returns) starts fresh with each
simulation and lives on across its dialogues, as it would in production.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.intent import IntentClassifier
from dialoop.dialogue.lookup import FactsLookup, Lookup
from dialoop.dialogue.manager import DialogueManager, TurnPlan
from dialoop.dialogue.policy import Policy
from dialoop.dialogue.state import DialogueState
from dialoop.engine import Chunk, GenerationParams, Message
from dialoop.engine.embedding import Embedder, default_embedder
from dialoop.policy.mdp import MDP, dialogue_reward
from dialoop.policy.simulator import Noise, SimulatedUser, UserModel

__all__ = ["DialogueResult", "SilentEngine", "Simulation", "SimulationReport"]

SIM_USER = "simulated-user"


@dataclass(frozen=True)
class DialogueResult:
    intent: str  # the goal's (the last one, after a goal change)
    success: bool
    turns: int  # user messages
    handed_off: bool
    reward: float
    ended: str  # "success" | "handed off" | "gave up" | "turn limit"
    events: tuple[str, ...]  # the noise that happened


@dataclass
class SimulationReport:
    policy: str
    noise: Noise
    seed: int
    dialogues: list[DialogueResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def success_rate(self) -> float:
        return _mean([d.success for d in self.dialogues])

    @property
    def average_turns(self) -> float:
        return _mean([d.turns for d in self.dialogues])

    @property
    def average_reward(self) -> float:
        return _mean([d.reward for d in self.dialogues])

    @property
    def hand_off_rate(self) -> float:
        return _mean([d.handed_off for d in self.dialogues])

    def to_dict(self) -> dict[str, Any]:
        by_intent: dict[str, list[DialogueResult]] = {}
        for d in self.dialogues:
            by_intent.setdefault(d.intent, []).append(d)
        return {
            "policy": self.policy, "dialogues": len(self.dialogues), "seed": self.seed,
            "noise": vars(self.noise), "task_success": round(self.success_rate, 4),
            "average_turns": round(self.average_turns, 3),
            "average_reward": round(self.average_reward, 3),
            "hand_off_rate": round(self.hand_off_rate, 4),
            "ended": dict(Counter(d.ended for d in self.dialogues)),
            "success_by_intent": {i: round(_mean([d.success for d in ds]), 4)
                                  for i, ds in sorted(by_intent.items())},
            "seconds": round(self.seconds, 2),
        }


class Simulation:
    """Simulated users of one domain talking to its real dialogue manager."""

    def __init__(self, domain: Domain, *, noise: Noise | None = None, seed: int = 0,
                 max_turns: int = 10, embedder: Embedder | None = None,
                 home: Path | None = None) -> None:
        self.domain = domain
        self.mdp = MDP.of(domain)
        self.noise = noise or Noise()
        self.seed = seed
        self.max_turns = max_turns
        embedder = _Memo(embedder or default_embedder())
        self.classifier = IntentClassifier(domain, embedder)
        self.lookup: Lookup | None = FactsLookup(domain.resolve(domain.spec.knowledge),
                                                 embedder) if domain.spec.knowledge else None
        self.users = UserModel(domain, self.lookup)
        self._own_home = home is None
        self.home = Path(tempfile.mkdtemp(prefix="dialoop-sim-")) if home is None else home

    def manager(self, policy: Policy | str) -> DialogueManager:
        """A dialogue manager for ``policy`` sharing this simulation's understanding."""
        return DialogueManager(self.domain, engine=SilentEngine(), policy=policy,
                               classifier=self.classifier, lookup=self.lookup)

    def user(self, index: int) -> SimulatedUser:
        """The simulated user of dialogue ``index`` (the same for the same seed)."""
        rng = random.Random(f"{self.seed}:{index}")
        return SimulatedUser(self.users, self.noise, rng, self.max_turns)

    def run(self, index: int, manager: DialogueManager,
            on_turn: Callable[[TurnPlan], None] | None = None) -> DialogueResult:
        """Dialogue number ``index``: the user talks until they are done or give up."""
        user = self.user(index)
        state = DialogueState()
        message: str | None = user.opening()
        while message is not None:
            plan = manager.plan(message, user=SIM_USER, turns=[_Said(state.to_dict())],
                                home=self.home, use_memory=False)
            state = plan.state
            if on_turn is not None:
                on_turn(plan)
            message = user.reply(plan)
        reward = dialogue_reward(self.domain.spec.reward, turns=user.turns,
                                 success=user.success, handed_off=user.handed_off)
        return DialogueResult(user.goal.intent, user.success, user.turns, user.handed_off,
                              reward, user.ended, tuple(user.events))

    def run_many(self, n: int, policy: Policy | str = "rule", *,
                 progress: Callable[[DialogueResult], None] | None = None) -> SimulationReport:
        manager = self.manager(policy)
        report = SimulationReport(manager.policy.name, self.noise, self.seed)
        start = time.perf_counter()
        for i in range(n):
            report.dialogues.append(self.run(i, manager))
            if progress is not None:
                progress(report.dialogues[-1])
        report.seconds = time.perf_counter() - start
        return report

    def close(self) -> None:
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Simulation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SilentEngine:
    """An engine that never says anything: simulated dialogues need no language model."""

    kind = "silent"
    name = "silent"
    context_window = 4096

    def render(self, messages: Sequence[Message]) -> str:
        return "".join(m["content"] for m in messages)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def escape(self, text: str) -> str:
        return text

    def stream(self, messages: Sequence[Message], params: GenerationParams, *,
               adapter: str | None = None, cache_scope: str | None = None,
               stop: Any = None) -> Iterator[Chunk]:
        return iter(())

    def cancel(self) -> None:
        pass

    def load_adapter(self, name: str, path: Path) -> None:
        pass

    def unload_adapter(self, name: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class _Said:
    """The last answer of a simulated session, as ``state_from_turns`` reads it."""

    state: dict[str, Any]
    role: str = "assistant"


class _Memo:
    """An embedder that remembers every sentence it embedded (templated messages repeat)."""

    def __init__(self, embedder: Embedder) -> None:
        self.inner = embedder
        self.name, self.dim = embedder.name, embedder.dim
        self._seen: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._seen]
        if new:
            self._seen.update(zip(new, self.inner.embed(new), strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._seen[t] for t in texts])


def _mean(values: Sequence[float | bool]) -> float:
    return float(np.mean(values)) if values else 0.0
