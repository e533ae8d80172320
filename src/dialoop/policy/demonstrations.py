"""Trajectories of simulated dialogues, for the learners that start from demonstrations
(:mod:`~dialoop.policy.irl`, :mod:`~dialoop.policy.hierarchical`).

    env = DialogueEnv(Simulation(domain, noise=Noise.uniform(0.2)))
    demos = roll_out(env, 200, rule_teacher(env.mdp))            # the rules, as the expert
    explore = roll_out(env, 200, rule_teacher(env.mdp), epsilon=0.3, rng=rng, start=200)

A trajectory is one dialogue: the state vector and features before each decision, the
action taken, and how the dialogue ended. ``epsilon`` replaces the actor's action by a
uniformly random one with that probability (exploration, to see what the other
actions lead to).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dialoop.dialogue.policy import Features, RulePolicy
from dialoop.policy.env import DialogueEnv
from dialoop.policy.mdp import MDP
from dialoop.policy.registry import LinearModel

log = logging.getLogger(__name__)

__all__ = ["Actor", "Trajectory", "fit_linear", "roll_out", "progress_bar", "rule_teacher",
           "scores"]

Actor = Callable[[np.ndarray, Features], int]
"""Chooses an action index from the state vector and the features it was made from."""


@dataclass(frozen=True)
class Trajectory:
    states: np.ndarray  # (T, S) state vectors before each decision
    actions: np.ndarray  # (T,) action indices
    features: tuple[Features, ...]  # (T,)
    success: bool
    turns: int
    handed_off: bool
    reward: float  # the dialogue's reward under the domain's reward section


def rule_teacher(mdp: MDP) -> Actor:
    """The domain's rule policy as an actor (a bare ``clarify`` resolved as the manager would)."""
    rules = RulePolicy(mdp.domain)
    return lambda x, f: mdp.index(rules.decide(f).action, f)


def roll_out(env: DialogueEnv, dialogues: int, actor: Actor, *, epsilon: float = 0.0,
             rng: np.random.Generator | None = None, start: int = 0,
             progress: Callable[[int, int], None] | None = None) -> list[Trajectory]:
    """Dialogues ``start`` … ``start + dialogues - 1`` of the env's simulation, played by
    ``actor``."""
    if epsilon > 0 and rng is None:
        raise ValueError("Exploring (epsilon > 0) needs an rng.")
    n_actions = len(env.mdp.actions)
    out: list[Trajectory] = []
    for i in range(dialogues):
        obs, info = env.reset(seed=start + i)
        states, actions, features = [], [], []
        done = False
        while not done:
            f = info["features"]
            a = actor(obs, f)
            if epsilon > 0 and rng is not None and rng.random() < epsilon:
                a = int(rng.integers(n_actions))
            states.append(obs)
            actions.append(a)
            features.append(f)
            obs, _, done, _, info = env.step(a)
        out.append(Trajectory(np.array(states, dtype=np.float32), np.array(actions),
                              tuple(features), bool(info["success"]), int(info["turns"]),
                              bool(info["handed_off"]), float(info["reward"])))
        if progress is not None:
            progress(i + 1, dialogues)
    return out


def scores(trajectories: list[Trajectory]) -> dict[str, float]:
    """Task success, average turns, average reward and hand-off rate of some dialogues."""
    if not trajectories:
        return {}
    return {"task_success": round(float(np.mean([t.success for t in trajectories])), 4),
            "average_turns": round(float(np.mean([t.turns for t in trajectories])), 3),
            "average_reward": round(float(np.mean([t.reward for t in trajectories])), 3),
            "hand_off_rate": round(float(np.mean([t.handed_off for t in trajectories])), 4)}


def fit_linear(X: np.ndarray, y: np.ndarray, n_classes: int, *, seed: int,
               sample_weight: np.ndarray | None = None,
               balanced: bool = False) -> LinearModel:
    """A linear classifier (multinomial logistic regression) as a :class:`LinearModel` over
    ``n_classes`` outputs; a class absent from ``y`` is never chosen. ``balanced`` weighs
    each class as much as the others however rare it is."""
    from sklearn.linear_model import LogisticRegression

    weights = np.zeros((n_classes, X.shape[1]))
    bias = np.full(n_classes, -1e6)
    classes = np.unique(y)
    if len(classes) == 1:
        bias[classes[0]] = 0.0
    else:
        clf = LogisticRegression(C=100.0, max_iter=2000, random_state=seed,
                                 class_weight="balanced" if balanced else None)
        clf.fit(X, y, sample_weight=sample_weight)
        coef, intercept = clf.coef_, clf.intercept_
        if len(classes) == 2:  # sklearn gives one row (for the second class) for two
            coef, intercept = np.vstack([-coef, coef]) / 2, np.array([-1, 1]) * intercept / 2
        weights[classes], bias[classes] = coef, intercept
    return LinearModel(weights.astype(np.float32), bias.astype(np.float32))


def progress_bar(progress: bool | Callable[[int, int], None] | None,
                 desc: str) -> Callable[[int, int], None] | None:
    """``progress`` as a ``(done, total)`` callback: itself when callable, a tqdm bar when
    true (``dialoop train policy`` passes a flag), nothing when false or None."""
    if callable(progress):
        return progress
    if not progress:
        return None
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="step")

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


EVAL_DIALOGUES = 200
"""Held-out simulated users a learner's report scores it and the rules on."""


def tensorboard_writer(log_dir: Path | None) -> Any:
    """A TensorBoard ``SummaryWriter`` for ``log_dir``, or None without one."""
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(log_dir))


def held_out(env: DialogueEnv, dialogues: int, actor: Actor, teacher: Actor, *, start: int,
             progress: Callable[[int, int], None] | None = None) -> dict[str, dict[str, float]]:
    """``actor`` and the rules (``teacher``) on the same ``dialogues`` held-out users, from
    dialogue ``start`` on: a learner's report's ``simulated`` and ``rule_simulated``."""
    learned = roll_out(env, dialogues, actor, start=start, progress=progress)
    rules = roll_out(env, dialogues, teacher, start=start)
    return {"simulated": scores(learned), "rule_simulated": scores(rules)}


def close_run(writer: Any, method: str, report: dict[str, Any], step: int, users: int) -> None:
    """The held-out success of ``report`` (on ``users`` simulated users) to TensorBoard (at
    ``step``) and the log; the writer closed."""
    held = report["simulated"]  # empty when no held-out users were played
    if writer is not None:
        if held:
            writer.add_scalar(f"{method}/simulated_success", held["task_success"], step)
        writer.close()
    if held:
        log.info("%s: success %.3f (rules %.3f) on %d held-out simulated users", method,
                 held["task_success"], report["rule_simulated"]["task_success"], users)
