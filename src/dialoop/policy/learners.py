"""Policy learners: each turns a domain into a model that :class:`PolicyRegistry.add` stores.

    model, report = train("rl", domain, seed=0, steps=20_000, noise=0.2)
    PolicyRegistry(home).add(domain, model, method="rl", report=report)

Every learner has the same keyword signature (``seed``, ``dialogues``, ``steps``,
``noise``, ``progress``, ``log_dir``, ``home``) and returns ``(model, report)``:

- **supervised** (:func:`train_supervised`): a multinomial logistic regression from
  the MDP's state vector to the action (a :class:`LinearModel`), fitted on
  (a) the domain's stories, replayed with their annotations, (b) the decisions logged
  in real sessions of this domain (every step of a stored ``TurnTrace``; turns rated
  down are left out) and (c) ``dialogues`` simulated dialogues in which the domain's
  rules decide (the rules as the teacher, at the simulator's noise).
- **rl** (:func:`train_rl`): Stable-Baselines3's PPO over :class:`DialogueEnv`.
  The policy network starts from behaviour cloning of the rules (cross-entropy on the
  teacher's decisions in ``warm_dialogues`` simulated dialogues), so training starts
  at the rules' success instead of at random, and PPO then optimises the domain's
  reward from there: where the rules are wrong (a deleted rule, a better strategy),
  the reward, not the teacher, decides. PPO because its clipped updates stay near the
  cloned start and it learns from scratch on the tiny test domain in 512 decisions
  (tests/policies/test_learners.py); DQN was not measured against it.
- **irl** and **hierarchical** live in :mod:`.irl` and :mod:`.hierarchical`.

Why a linear model for supervised: the state is a handful of one-hot features and the
rules are a decision list over them, which a linear scorer fits (the report gives its
agreement with the training decisions); it is stored as numpy weights and explains
itself (weights per action and state entry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.policy import Decision, Features, RulePolicy, replay
from dialoop.errors import ConfigError, InvalidInputError
from dialoop.policy.mdp import MDP
from dialoop.policy.registry import LinearModel, VectorPolicy
from dialoop.policy.simulation import Simulation, SimulationReport
from dialoop.policy.simulator import Noise

__all__ = ["METHODS", "Demonstrations", "as_policy", "clone", "rule_demonstrations",
           "session_demonstrations", "simulate", "story_demonstrations", "train", "train_rl",
           "train_supervised"]

log = logging.getLogger(__name__)

METHODS = ("supervised", "rl", "irl", "hierarchical")
Learner = Callable[..., tuple[Any, dict[str, Any]]]


def train(method: str, domain: Domain, **options: Any) -> tuple[Any, dict[str, Any]]:
    """Train a policy of ``domain`` with ``method`` (one of :data:`METHODS`)."""
    return _learner(method)(domain, **options)


def _learner(method: str) -> Learner:
    if method == "supervised":
        return train_supervised
    if method == "rl":
        return train_rl
    if method in ("irl", "hierarchical"):
        try:
            module = __import__(f"dialoop.policy.{method}", fromlist=[f"train_{method}"])
            return getattr(module, f"train_{method}")  # type: ignore[no-any-return]
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"The {method!r} learner is not available in this dialoop "
                              f"(dialoop.policy.{method}.train_{method}: {exc}).") from exc
    raise InvalidInputError(f"Unknown learning method {method!r}: choose one of "
                            f"{', '.join(METHODS)}.")


# -- demonstrations ----------------------------------------------------------------------------


@dataclass
class Demonstrations:
    """(state vector, action index) pairs with a weight each, and where they came from."""

    states: list[np.ndarray] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)

    def add(self, x: np.ndarray, action: int, source: str, weight: float = 1.0) -> None:
        self.states.append(x)
        self.actions.append(action)
        self.weights.append(weight)
        self.sources[source] = self.sources.get(source, 0) + 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """X (N, S), y (N,), w (N,)."""
        return (np.stack(self.states).astype(np.float32), np.array(self.actions),
                np.array(self.weights, dtype=np.float64))


class _Recorder:
    """A policy that lets ``teacher`` decide and records each decision."""

    def __init__(self, mdp: MDP, teacher: Any, demos: Demonstrations, source: str) -> None:
        self.mdp, self.teacher, self.demos, self.source = mdp, teacher, demos, source
        self.name = getattr(teacher, "name", "teacher")

    def decide(self, features: Features) -> Decision:
        decision = self.teacher.decide(features)
        self.demos.add(self.mdp.vector(features), self.mdp.index(decision.action, features),
                       self.source)
        return decision


def rule_demonstrations(domain: Domain, dialogues: int, *, noise: float = 0.0, seed: int = 0,
                        demos: Demonstrations | None = None, embedder: Any = None,
                        teacher: Any = None) -> Demonstrations:
    """The decisions of ``teacher`` (default: the domain's rules) in ``dialogues``
    simulated dialogues."""
    demos = demos if demos is not None else Demonstrations()
    if dialogues <= 0:
        return demos
    mdp = MDP.of(domain)
    with Simulation(domain, noise=Noise.uniform(noise), seed=seed + 7919,  # not the eval users
                    embedder=embedder) as sim:
        sim.run_many(dialogues, _Recorder(mdp, teacher or RulePolicy(domain), demos,
                                          "simulated"))
    return demos


def story_demonstrations(domain: Domain, demos: Demonstrations) -> None:
    mdp = MDP.of(domain)
    for story in domain.stories:
        for features, action in replay(domain, story):
            demos.add(mdp.vector(features), mdp.index(action, features), "stories")


def session_demonstrations(domain: Domain, database_url: str, demos: Demonstrations) -> None:
    """Every decision logged in sessions of ``domain`` (turns rated down are left out)."""
    import sqlalchemy as sa

    from dialoop.store import open_database
    from dialoop.store.models import Feedback, Turn

    mdp = MDP.of(domain)
    db = open_database(database_url)
    try:
        with db.read() as s:
            disliked = set(s.scalars(sa.select(Feedback.turn_id).where(
                Feedback.kind == "rating", Feedback.rating < 0)))
            rows = s.execute(sa.select(Turn.id, Turn.trace).where(
                Turn.role == "assistant", Turn.trace.is_not(None))).all()
    finally:
        db.close()
    for turn_id, trace in rows:
        dialogue = (trace or {}).get("dialogue") or {}
        if dialogue.get("domain") != domain.name or turn_id in disliked:
            continue
        for step in dialogue.get("steps") or []:
            try:
                features = Features(**{k: tuple(v) if isinstance(v, list) else v
                                       for k, v in (step.get("features") or {}).items()})
                demos.add(mdp.vector(features), mdp.index(step["action"], features), "sessions")
            except (TypeError, KeyError, InvalidInputError):
                continue  # a trace of an older layout of the domain


# -- supervised ------------------------------------------------------------------------------


def train_supervised(domain: Domain, *, seed: int = 0, dialogues: int = 500, steps: int = 0,
                     noise: float = 0.2, progress: bool = False, log_dir: Path | None = None,
                     home: Path | None = None, database_url: str | None = None,
                     embedder: Any = None) -> tuple[LinearModel, dict[str, Any]]:
    """A linear policy imitating the stories, the logged sessions and the simulated rules
    (``steps``, ``progress`` and ``log_dir`` are unused: it is one convex fit)."""
    start = time.perf_counter()
    mdp = MDP.of(domain)
    demos = Demonstrations()
    story_demonstrations(domain, demos)
    url = database_url or (f"sqlite:///{Path(home) / 'dialoop.db'}"
                           if home is not None and (Path(home) / "dialoop.db").exists() else None)
    if url:
        session_demonstrations(domain, url, demos)
    rule_demonstrations(domain, dialogues, noise=noise, seed=seed, demos=demos,
                        embedder=embedder)
    if not demos.states:
        raise ConfigError(f"Nothing to learn a policy of {domain.name!r} from: give it stories "
                          "(policy.stories), logged sessions or simulated dialogues.")
    X, y, w = demos.arrays()  # (N, S), (N,), (N,)
    model = _linear(mdp, X, y, w, seed)
    agreement = float(np.mean([model.choose(x) == a for x, a in zip(X, y, strict=True)]))
    report = {"method": "supervised", "examples": len(y), "sources": demos.sources,
              "training_agreement": round(agreement, 4), "seed": seed,
              "seconds": round(time.perf_counter() - start, 1)}
    return model, report


def _linear(mdp: MDP, X: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int) -> LinearModel:
    """Fit a multinomial logistic regression and spread it over all of the MDP's actions
    (an action never demonstrated gets a score it cannot win with)."""
    from sklearn.linear_model import LogisticRegression

    A, S = len(mdp.actions), len(mdp.state_names)
    weights, bias = np.zeros((A, S)), np.full(A, -1e3)
    classes = np.unique(y)
    if len(classes) == 1:
        bias[classes[0]] = 0.0
        return LinearModel(weights, bias)
    fit = LogisticRegression(C=100.0, max_iter=5000, random_state=seed).fit(
        X, y, sample_weight=w)
    if len(classes) == 2:  # sklearn keeps one row: class 1 scores +z, class 0 -z
        weights[classes[1]], bias[classes[1]] = fit.coef_[0] / 2, fit.intercept_[0] / 2
        weights[classes[0]], bias[classes[0]] = -fit.coef_[0] / 2, -fit.intercept_[0] / 2
    else:
        weights[fit.classes_], bias[fit.classes_] = fit.coef_, fit.intercept_
    return LinearModel(weights, bias)


# -- reinforcement learning ----------------------------------------------------------------


def train_rl(domain: Domain, *, seed: int = 0, dialogues: int = 0, steps: int = 20_000,
             noise: float = 0.2, progress: bool = False, log_dir: Path | None = None,
             home: Path | None = None, warm_dialogues: int = 300, evaluate_every: int = 0,
             eval_dialogues: int = 200, learning_rate: float = 3e-4,
             teacher: Any = None, smoothing: float = 0.1, ent_coef: float = 0.0,
             embedder: Any = None) -> tuple[Any, dict[str, Any]]:
    """PPO against simulated users, warm-started by cloning ``teacher`` (default: the
    domain's rules; ``smoothing`` keeps that much probability on the other actions, so
    that PPO still tries them).

    ``dialogues`` (if > 0) ends training after that many simulated dialogues, else
    after ``steps`` decisions. ``evaluate_every`` > 0 measures the policy every that
    many dialogues on ``eval_dialogues`` fixed simulated users (the report's ``curve``).
    """
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from dialoop.policy.env import DialogueEnv

    torch.set_num_threads(1)  # the simulator and the net share the cores: one thread each
    torch.manual_seed(seed)
    start = time.perf_counter()
    mdp = MDP.of(domain)
    curve: list[dict[str, float]] = []
    with Simulation(domain, noise=Noise.uniform(noise), seed=seed, embedder=embedder) as sim, \
            Simulation(domain, noise=Noise.uniform(noise), seed=seed + 104729,
                       embedder=embedder) as held:
        env = DialogueEnv(sim)
        model = PPO("MlpPolicy", env, learning_rate=learning_rate, n_steps=256, batch_size=64,
                    n_epochs=4, gamma=0.99, ent_coef=ent_coef, seed=seed, device="cpu",
                    policy_kwargs={"net_arch": [64, 64]}, verbose=0,
                    tensorboard_log=str(log_dir) if log_dir else None)
        cloned = None
        if warm_dialogues > 0:
            demos = rule_demonstrations(domain, warm_dialogues, noise=noise, seed=seed,
                                        embedder=embedder, teacher=teacher)
            if teacher is None:  # the stories are the rules' (a teacher of its own has none)
                story_demonstrations(domain, demos)
            cloned = clone(model, demos, seed=seed, smoothing=smoothing)

        def measure(done: int) -> None:
            r = held.run_many(eval_dialogues, as_policy(mdp, model, "rl"))
            curve.append({"dialogues": done, "success": round(r.success_rate, 4),
                          "turns": round(r.average_turns, 3),
                          "reward": round(r.average_reward, 3)})
            log.info("RL after %d dialogues: success %.3f", done, r.success_rate)

        class _Budget(BaseCallback):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.dialogues = 0

            def _on_step(self) -> bool:
                ended = int(np.sum(self.locals["dones"]))
                for _ in range(ended):
                    self.dialogues += 1
                    if evaluate_every and self.dialogues % evaluate_every == 0:
                        measure(self.dialogues)
                return not (dialogues and self.dialogues >= dialogues)

        if evaluate_every:
            measure(0)
        budget = _Budget()
        total = steps if not dialogues else 100 * dialogues  # the callback stops it first
        model.learn(total_timesteps=total, callback=budget, progress_bar=progress,
                    tb_log_name=f"ppo-{domain.name}")
        env.close()
    report = {"method": "rl", "algorithm": "PPO", "steps": int(model.num_timesteps),
              "dialogues": budget.dialogues, "warm_start": cloned, "noise": noise,
              "seed": seed, "curve": curve, "seconds": round(time.perf_counter() - start, 1)}
    return model, report


def clone(model: Any, demos: Demonstrations, *, seed: int = 0, epochs: int = 60,
          smoothing: float = 0.1) -> dict[str, Any]:
    """Behaviour cloning: fit ``model``'s policy network to the demonstrated actions
    (cross-entropy with label smoothing), so that reinforcement learning starts from the
    teacher and still explores."""
    import torch

    X, y, _ = demos.arrays()
    obs = torch.as_tensor(X)
    actions = torch.as_tensor(y)
    policy = model.policy
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    policy.set_training_mode(True)
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=generator).split(256):
            dist = policy.get_distribution(obs[batch]).distribution  # Categorical over A
            log_probs = torch.log_softmax(dist.logits, dim=1)  # (B, A)
            chosen = log_probs.gather(1, actions[batch].unsqueeze(1)).squeeze(1)  # (B,)
            loss = -((1 - smoothing) * chosen + smoothing * log_probs.mean(dim=1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    policy.set_training_mode(False)
    with torch.no_grad():
        chosen = policy.get_distribution(obs).distribution.probs.argmax(dim=1)
    return {"examples": len(y), "sources": demos.sources,
            "agreement": round(float((chosen == actions).float().mean()), 4)}


def as_policy(mdp: MDP, model: Any, name: str) -> VectorPolicy:
    """A trained model (linear or Stable-Baselines3) as a policy the manager can ask."""
    if hasattr(model, "choose"):  # LinearModel, HierarchicalModel
        return VectorPolicy(mdp, model.choose, name)
    return VectorPolicy(mdp, lambda x: int(model.predict(x, deterministic=True)[0]), name)


def simulate(domain: Domain, policy: Any, *, dialogues: int, noise: float, seed: int,
             embedder: Any = None) -> SimulationReport:
    """``policy`` ("rule", a Policy) on ``dialogues`` simulated users of ``domain``."""
    with Simulation(domain, noise=Noise.uniform(noise), seed=seed, embedder=embedder) as sim:
        return sim.run_many(dialogues, policy)
