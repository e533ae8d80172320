"""A hierarchical policy: a top level picks the sub-task, a policy per sub-task the action.

    model, report = train_hierarchical(domain, seed=0, dialogues=600, noise=0.2)
    PolicyRegistry(home).add(domain, model, method="hierarchical", report=report)
    model.route(x)   # which sub-task the state x belongs to (an index into model.subtasks)
    model.choose(x)  # the action (an index into MDP.actions), as any stored policy

**Sub-tasks** are the domain's intents (``order_status``, ``talk_to_person``, … — the
out-of-domain intent included) and ``unsure``: the dialogue does not know yet what it
is about. A step belongs to the sub-task of the intent the dialogue is serving at
that step (the understood intent when it is trusted, else ``unsure``): that is the
supervision of the **top level**, a linear classifier over the MDP state vector.

Each **low level** is a linear policy over the actions of its sub-task: the actions
the expert (the domain's rules) took in that sub-task — asking for *that* intent's
slots, reading them back, calling *its* tool, answering, handing off; any other
action scores minus infinity. It learns by imitation with DAgger (Ross et al. 2011):
first on the expert's own dialogues, then ``ROUNDS`` times on the states the current
hierarchical policy reaches itself in simulation (with some random actions, to reach
states the expert never does), labelled by the expert, on all data so far. Each low
level only sees its own sub-task's steps, so each is small and its mistakes stay in
its sub-task.

Stored as registry format ``hierarchical`` (one ``hierarchical.npz``: the top level's
and the stacked low levels' weights, and the sub-task names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.policy import Features
from dialoop.engine.embedding import Embedder
from dialoop.policy.demonstrations import (
    EVAL_DIALOGUES,
    Trajectory,
    close_run,
    fit_linear,
    held_out,
    progress_bar,
    roll_out,
    rule_teacher,
    scores,
    tensorboard_writer,
)
from dialoop.policy.env import DialogueEnv
from dialoop.policy.mdp import MDP
from dialoop.policy.registry import LinearModel
from dialoop.policy.simulation import Simulation
from dialoop.policy.simulator import Noise

__all__ = ["FILE", "HierarchicalModel", "subtask_of", "subtasks", "train_hierarchical"]


FILE = "hierarchical.npz"
UNSURE = "unsure"
ROUNDS = 2
"""DAgger rounds after the expert's own dialogues."""
EXPLORE = 0.1
"""Random actions while the learner plays a DAgger round."""


@dataclass(frozen=True)
class HierarchicalModel:
    subtasks: tuple[str, ...]
    top: LinearModel  # (K sub-tasks, S)
    subs: tuple[LinearModel, ...]  # K policies, each (A actions, S)

    def route(self, x: np.ndarray) -> int:
        return self.top.choose(x)

    def choose(self, x: np.ndarray) -> int:
        return self.subs[self.route(x)].choose(x)

    def save(self, folder: Path) -> None:
        np.savez(folder / FILE, subtasks=np.array(self.subtasks),
                 top_weights=self.top.weights, top_bias=self.top.bias,
                 sub_weights=np.stack([s.weights for s in self.subs]),
                 sub_bias=np.stack([s.bias for s in self.subs]))

    @classmethod
    def load(cls, folder: Path) -> HierarchicalModel:
        with np.load(folder / FILE) as data:
            subs = tuple(LinearModel(w, b) for w, b in zip(data["sub_weights"],
                                                            data["sub_bias"], strict=True))
            return cls(tuple(str(s) for s in data["subtasks"]),
                       LinearModel(data["top_weights"], data["top_bias"]), subs)


def subtasks(mdp: MDP) -> tuple[str, ...]:
    return (UNSURE, *mdp.domain.spec.intents)


def subtask_of(mdp: MDP, f: Features) -> int:
    """The sub-task a step belongs to: the intent it serves, when that intent is trusted."""
    names = subtasks(mdp)
    if (f.confident or f.out_of_domain) and f.intent in names:
        return names.index(f.intent)
    return 0


def fit(mdp: MDP, data: list[Trajectory], labels: list[np.ndarray], *,
        seed: int) -> HierarchicalModel:
    """The top level on every step's sub-task, each low level on its own steps' labels."""
    names = subtasks(mdp)
    X = np.concatenate([t.states for t in data])  # (N steps, S)
    y = np.concatenate(labels)  # (N,) the expert's actions
    k = np.array([subtask_of(mdp, f) for t in data for f in t.features])  # (N,)
    # Balanced: "unsure" steps of an intent that is usually understood are rare, and a
    # top level that sends them to that intent's policy asks for its slots instead of
    # what the user wants (measured on store_support: unsure return requests).
    top = fit_linear(X, k, len(names), seed=seed, balanced=True)
    subs = []
    for i in range(len(names)):
        mine = k == i
        if mine.any():
            subs.append(fit_linear(X[mine], y[mine], len(mdp.actions), seed=seed))
        else:  # a sub-task never seen: answer (the top level never routes here anyway)
            subs.append(fit_linear(X[:1], np.array([mdp.index("answer")]), len(mdp.actions),
                                   seed=seed))
    return HierarchicalModel(names, top, tuple(subs))


def train_hierarchical(domain: Domain, *, seed: int = 0, dialogues: int | None = None,
                       steps: int | None = None, noise: float | Noise = 0.2,
                       progress: bool | Callable[[int, int], None] | None = None,
                       log_dir: Path | None = None, home: Path | None = None,
                       embedder: Embedder | None = None,
                       eval_dialogues: int = EVAL_DIALOGUES,
                       **_: Any) -> tuple[HierarchicalModel, dict[str, Any]]:
    """DAgger over ``dialogues`` simulated dialogues (the expert's, then ``ROUNDS`` rounds of
    the learner's). ``steps`` and ``home`` are unused (no gradient steps to count; the
    simulated tools get a temporary world). ``progress(done, total)`` counts dialogues."""
    dialogues = dialogues or 600
    noise = noise if isinstance(noise, Noise) else Noise.uniform(noise)
    rng = np.random.default_rng(seed)
    progress = progress_bar(progress, "hierarchical")
    per_round = max(dialogues // (ROUNDS + 1), 1)
    done, total = 0, per_round * (ROUNDS + 1) + eval_dialogues

    def tick(i: int, _: int) -> None:
        if progress is not None:
            progress(done + i, total)

    writer = tensorboard_writer(log_dir)
    with Simulation(domain, noise=noise, seed=seed, embedder=embedder) as sim:
        env = DialogueEnv(sim)
        mdp, teacher = env.mdp, rule_teacher(env.mdp)
        data = roll_out(env, per_round, teacher, progress=tick)
        done += per_round
        labels = [t.actions for t in data]
        model = fit(mdp, data, labels, seed=seed)
        for r in range(1, ROUNDS + 1):
            mine = roll_out(env, per_round, _act(model), epsilon=EXPLORE,
                            rng=rng, start=r * per_round, progress=tick)
            done += per_round
            if writer is not None:
                writer.add_scalar("hierarchical/round_success", scores(mine)["task_success"], r)
            data += mine
            labels += [np.array([teacher(x, f) for x, f in zip(t.states, t.features,
                                                                 strict=True)]) for t in mine]
            model = fit(mdp, data, labels, seed=seed)
        evaluation = held_out(env, eval_dialogues, _act(model), teacher,
                              start=per_round * (ROUNDS + 1), progress=tick)
        env.close()
    report = {"method": "hierarchical:dagger", "seed": seed, "dialogues": dialogues,
              "noise": vars(noise), "subtasks": list(model.subtasks),
              **_agreement(mdp, model, data, labels), **evaluation}
    close_run(writer, "hierarchical", report, ROUNDS + 1, eval_dialogues)
    return model, report


def _act(model: HierarchicalModel) -> Callable[[np.ndarray, Features], int]:
    return lambda x, f: model.choose(x)


def _agreement(mdp: MDP, model: HierarchicalModel, data: list[Trajectory],
               labels: list[np.ndarray]) -> dict[str, Any]:
    """How often the top level routes right and each low level agrees with the expert."""
    X = np.concatenate([t.states for t in data])
    y = np.concatenate(labels)
    k = np.array([subtask_of(mdp, f) for t in data for f in t.features])
    routed = np.array([model.route(x) for x in X])
    chosen = np.array([model.choose(x) for x in X])
    by_subtask = {name: round(float((chosen[k == i] == y[k == i]).mean()), 4)
                  for i, name in enumerate(model.subtasks) if (k == i).any()}
    return {"steps": len(y), "top_routing_accuracy": round(float((routed == k).mean()), 4),
            "expert_agreement": round(float((chosen == y).mean()), 4),
            "expert_agreement_by_subtask": by_subtask}

