"""The online learner: a contextual bandit that keeps improving the policy from live users.

While serving, :class:`OnlinePolicy` wraps the serving policy (the rules, or a stored
version) behind the same ``Policy`` protocol. At each decision its *arms* are the
actions the serving policy would consider: the distinct actions of the domain's rules
(a bare ``clarify`` resolved to what it would ask, as :meth:`MDP.index` does) and the
serving policy's own choice. It then

- **explores** with probability ``exploration`` (at most :data:`EXPLORATION_CAP`):
  one of the alternatives still worth trying (never tried here, or whose upper
  confidence bound reaches the serving action's estimate), uniformly; once every
  alternative is shown worse in a context, it stops exploring there;
- otherwise **exploits cautiously**: an alternative replaces the serving policy's
  action only when its *lower* confidence bound (ridge estimate minus ``alpha``
  standard errors) is above the serving action's estimate. With no evidence it is
  exactly the serving policy.

Each arm has a ridge regression of the dialogue's reward on the MDP state vector
(:meth:`MDP.vector` plus a constant 1): ``A = I + sum x x^T``, ``b = sum z x``,
estimate ``A^-1 b``, standard error ``sqrt(x^T A^-1 x)``. ``z`` is the reward of
:func:`~dialoop.policy.mdp.dialogue_reward` (rating, task success from the trace:
a tool that ran or a hand-off, the turn cost) divided by the largest it can be.

**Updates** come from the stored traces, not from memory: every step of a trace
keeps its features and its action, so a rating on an answer credits the decisions of
the session's turns since the one last credited up to the rated one
(:meth:`OnlineLearner.on_rating`). A turn that completes a task (a tool ran, a
hand-off) is credited when it is stored (:meth:`OnlineLearner.on_answer`); a rating
that comes later credits that turn once more, with the rating.

**Scope**: ``user`` (each user's own bandit: what one user's ratings teach never
reaches another) or ``global``. State is one small ``.npz`` per scope under
``$DIALOOP_HOME/policies/<domain>/online/``, replaced atomically.

Off by default: an admin sets ``policy_online = true`` (``policy_online_exploration``,
``policy_online_scope``) in the settings.

:func:`benchmark` runs a simulated deployment: simulated users rate by a hidden
preference, the learner starts from the rule policy and updates after each dialogue;
it reports the cumulative regret against an oracle that knows the preference.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.policy import Decision, Features, Policy, RulePolicy
from dialoop.errors import ConfigError, InvalidInputError
from dialoop.policy.mdp import MDP, dialogue_reward

__all__ = [
    "EXPLORATION_CAP",
    "OnlineLearner",
    "OnlinePolicy",
    "Preference",
    "benchmark",
]

log = logging.getLogger(__name__)

EXPLORATION_CAP = 0.2
"""The highest exploration rate allowed: one decision in five, at most, is an experiment."""

_USER: ContextVar[str | None] = ContextVar("dialoop_online_user", default=None)
_KEEP_SESSIONS = 500  # sessions whose last credited turn a scope remembers


# -- the bandit of one scope ------------------------------------------------------------------


class _Arms:
    """Ridge regressions of reward on state, one per action (K actions, d = state + 1)."""

    def __init__(self, mdp: MDP) -> None:
        K, d = len(mdp.actions), len(mdp.state_names) + 1
        self.mdp = mdp
        self.A = np.tile(np.eye(d), (K, 1, 1))  # (K, d, d)
        self.b = np.zeros((K, d))  # (K, d)
        self.n = np.zeros(K, dtype=np.int64)  # observations per arm
        self.credited: dict[str, int] = {}  # session id -> last turn id credited

    def x(self, f: Features) -> np.ndarray:
        return np.append(self.mdp.vector(f), 1.0)  # (d,)

    def estimate(self, k: int, x: np.ndarray) -> tuple[float, float]:
        """(mean, standard error) of arm ``k``'s normalised reward at ``x``."""
        A_inv_x = np.linalg.solve(self.A[k], x)
        return float(self.b[k] @ A_inv_x), float(np.sqrt(max(x @ A_inv_x, 0.0)))

    def update(self, k: int, x: np.ndarray, z: float) -> None:
        self.A[k] += np.outer(x, x)
        self.b[k] += z * x
        self.n[k] += 1

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"actions": list(self.mdp.actions), "state_names": list(self.mdp.state_names),
                "credited": dict(list(self.credited.items())[-_KEEP_SESSIONS:])}
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, A=self.A, b=self.b, n=self.n, meta=np.array(json.dumps(meta)))
        os.replace(tmp, path)  # readers see the old state or the new one, never half

    @classmethod
    def load(cls, mdp: MDP, path: Path) -> _Arms:
        arms = cls(mdp)
        if not path.exists():
            return arms
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            if meta["actions"] != list(mdp.actions) or meta["state_names"] != list(
                    mdp.state_names):
                log.warning("online policy state %s is for another layout of domain %r: "
                            "starting again", path, mdp.domain.name)
                return arms
            arms.A, arms.b, arms.n = data["A"].copy(), data["b"].copy(), data["n"].copy()
        arms.credited = {str(k): int(v) for k, v in meta.get("credited", {}).items()}
        return arms


# -- the learner: scopes, persistence, updates ------------------------------------------------


class OnlineLearner:
    """The bandits of one domain (one per user, or one global), kept under ``home``."""

    def __init__(self, domain: Domain, home: Path, *, scope: str = "user",
                 exploration: float = 0.05, alpha: float = 1.0, seed: int | None = None,
                 sessions: Any = None) -> None:
        if scope not in ("user", "global"):
            raise ConfigError(f"policy_online_scope is 'user' or 'global', not {scope!r}.")
        if not 0.0 <= exploration <= EXPLORATION_CAP:
            raise ConfigError(f"policy_online_exploration is between 0 and {EXPLORATION_CAP} "
                              f"(got {exploration}): lower it.")
        self.domain = domain
        self.mdp = MDP.of(domain)
        self.scope = scope
        self.exploration = exploration
        self.alpha = alpha
        self.sessions = sessions  # dialoop.dialogue.session.Sessions, to read rated traces
        self.rng = random.Random(seed)
        spec = domain.spec.reward
        self.scale = max(abs(spec.success), abs(spec.failure)) + abs(spec.rating) or 1.0
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", domain.name)
        self.folder = Path(home) / "policies" / safe / "online"
        self.rule_actions = tuple(dict.fromkeys(r.action for r in RulePolicy(domain).rules))
        self.decisions = 0  # in this process: decisions taken, and how many explored
        self.explored = 0
        self._arms: dict[str, _Arms] = {}
        self._lock = threading.Lock()

    def key(self, user: str | None) -> str:
        """The scope's file name: ``global``, or ``user-<name>-<hash>`` (names are free text)."""
        if self.scope == "global" or user is None:
            return "global"
        digest = hashlib.sha256(user.encode()).hexdigest()[:12]
        return f"user-{re.sub(r'[^A-Za-z0-9_-]', '_', user)[:40]}-{digest}"

    def arms(self, user: str | None) -> _Arms:
        key = self.key(user)
        if key not in self._arms:
            self._arms[key] = _Arms.load(self.mdp, self.folder / f"{key}.npz")
        return self._arms[key]

    def observations(self, user: str | None) -> int:
        """How many decisions were credited in ``user``'s scope (0: nothing learned yet)."""
        with self._lock:
            return int(self.arms(user).n.sum())

    # -- deciding -----------------------------------------------------------------------

    def choose(self, base: Decision, f: Features, user: str | None) -> Decision:
        """The serving policy's decision ``base``, or an alternative (see the module doc)."""
        mdp = self.mdp
        if self.scope == "user" and user is None:
            return base  # whose bandit is unknown: never mix users, serve as is
        try:
            b = mdp.index(base.action, f)
        except InvalidInputError:  # an action outside the MDP: the serving policy decides
            return base
        options = [mdp.index(a, f) for a in self.rule_actions if a in mdp.actions
                   or a == "clarify"]
        others = [k for k in dict.fromkeys(options) if k != b]
        with self._lock:
            arms = self.arms(user)
            self.decisions += 1
            x = arms.x(f)
            mean_b, _ = arms.estimate(b, x)
            # Worth trying: never tried, or its upper bound still reaches the serving action.
            hopeful = [k for k in others if _hopeful(arms, k, x, mean_b, self.alpha)]
            if hopeful and self.rng.random() < self.exploration:
                self.explored += 1
                k = self.rng.choice(hopeful)
                return Decision(mdp.actions[k], f"online: exploring {mdp.actions[k]} (rate "
                                f"{self.exploration}); {base.why}", "online")
            best, best_low = None, mean_b
            for k in others:
                mean, se = arms.estimate(k, x)
                if arms.n[k] and mean - self.alpha * se > best_low:
                    best, best_low = k, mean - self.alpha * se
        if best is None:
            return base
        return Decision(mdp.actions[best], f"online: {mdp.actions[best]} learned better here "
                        f"(lower bound {best_low:.2f} > {mean_b:.2f} for {base.action}); "
                        f"{base.why}", "online")

    # -- learning -----------------------------------------------------------------------

    def learn(self, user: str | None, steps: Sequence[Mapping[str, Any]], reward: float,
              *, credited: tuple[str, int] | None = None) -> int:
        """Credit each step (``{"action", "features"}`` as in a trace) with ``reward``;
        save the scope. Returns how many decisions were credited."""
        z = reward / self.scale
        with self._lock:
            arms = self.arms(user)
            n = 0
            for step in steps:
                action = step.get("action", "")
                if action not in self.mdp.actions or not step.get("features"):
                    continue  # an action of another layout, or a trace without features
                arms.update(self.mdp.actions.index(action), arms.x(_features(step["features"])),
                            z)
                n += 1
            if credited is not None:
                arms.credited.pop(credited[0], None)
                arms.credited[credited[0]] = credited[1]
            if n or credited is not None:
                arms.save(self.folder / f"{self.key(user)}.npz")
        return n

    def on_rating(self, *, user: str, session_id: str, turn_id: int, rating: int) -> int:
        """A rating committed on an answer (a listener of the feedback store)."""
        return self._credit(user, session_id, turn_id, rating)

    def on_answer(self, user: str, session_id: str, turn_id: int, trace: Mapping[str, Any]
                  ) -> int:
        """An answer was stored (``trace``: its stored ``TurnTrace``): credit the session so
        far if it completed a task."""
        dialogue = trace.get("dialogue") or {}
        state = dialogue.get("state_after") or {}
        done = any(c.get("ok") for c in dialogue.get("tool_calls") or [])
        if not (done or state.get("handed_off")):
            return 0
        try:
            return self._credit(user, session_id, turn_id, None)
        except Exception:  # the answer is stored and shown whatever happens here
            log.exception("the online learner could not learn from turn %d", turn_id)
            return 0

    def _credit(self, user: str, session_id: str, turn_id: int, rating: float | None) -> int:
        if self.sessions is None:
            return 0
        session = self.sessions.get(session_id, user)
        turns = [t for t in self.sessions.turns(session) if t.id <= turn_id]
        with self._lock:
            last = self.arms(user).credited.get(session_id, 0)
        since = [t for t in turns if t.role == "assistant" and t.trace
                 and (t.id > last or (last >= turn_id and t.id == turn_id))]
        traces = [t.trace.get("dialogue") or {} for t in turns
                  if t.role == "assistant" and t.trace]
        if not since or not any(tr.get("domain") == self.domain.name for tr in traces):
            return 0
        success = any(c.get("ok") for tr in traces
                      for c in tr.get("tool_calls") or [])
        handed_off = bool((traces[-1].get("state_after") or {}).get("handed_off"))
        reward = dialogue_reward(self.domain.spec.reward,
                                 turns=sum(t.role == "user" for t in turns),
                                 success=success or handed_off, handed_off=handed_off,
                                 rating=rating)
        steps = [s for t in since for s in (t.trace.get("dialogue") or {}).get("steps", [])]
        return self.learn(user, steps, reward, credited=(session_id, max(last, turn_id)))

    @contextlib.contextmanager
    def serving(self, user: str | None) -> Iterator[None]:
        """Decisions inside this block are for ``user`` (the ``Policy`` protocol has no user)."""
        token = _USER.set(user)
        try:
            yield
        finally:
            _USER.reset(token)


class OnlinePolicy:
    """The serving policy ``base`` with an online learner in front (a ``Policy``)."""

    def __init__(self, base: Policy, learner: OnlineLearner) -> None:
        self.base = base
        self.learner = learner
        self.name = f"online({base.name})"

    def decide(self, features: Features) -> Decision:
        decision = self.base.decide(features)
        return self.learner.choose(decision, features, _USER.get())


def _hopeful(arms: _Arms, k: int, x: np.ndarray, mean_b: float, alpha: float) -> bool:
    """Arm ``k`` is worth trying at ``x``: never tried, or its upper confidence bound still
    reaches the serving action's estimate ``mean_b``."""
    if not arms.n[k]:
        return True
    mean, se = arms.estimate(k, x)
    return mean + alpha * se >= mean_b


def _features(d: Mapping[str, Any]) -> Features:
    """Features as a trace stores them (``Features.to_dict``)."""
    fields = {f.name for f in dataclasses.fields(Features)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields}
    return Features(**values)


# -- a simulated deployment ---------------------------------------------------------------------


@dataclass(frozen=True)
class Preference:
    """How simulated users rate a dialogue, unknown to the policy: -1 when they were asked a
    ``disliked`` question ``times`` times or more, +1 on success within ``quick_turns``
    user turns, 0 otherwise."""

    disliked: tuple[str, ...] = ("clarify:intent",)
    times: int = 1
    quick_turns: int = 2

    def rating(self, actions: Sequence[str], success: bool, turns: int) -> int:
        if sum(a in self.disliked for a in actions) >= self.times:
            return -1
        return 1 if success and turns <= self.quick_turns else 0


class _Obliging:
    """The oracle: the base policy, but it never asks ``clarify:intent`` when the preference
    dislikes it (it acts on the best guess instead)."""

    def __init__(self, base: Policy, preference: Preference, mdp: MDP) -> None:
        self.base, self.preference, self.mdp = base, preference, mdp
        self.name = "oracle"

    def decide(self, features: Features) -> Decision:
        decision = self.base.decide(features)
        action = self.mdp.actions[self.mdp.index(decision.action, features)]
        if action in self.preference.disliked and action == "clarify:intent":
            return self.base.decide(dataclasses.replace(features, confident=True))
        return decision


def benchmark(domain: Domain, *, dialogues: int = 300, seed: int = 0, noise: Any = None,
              exploration: float = 0.1, alpha: float = 1.0, window: int = 50,
              preference: Preference | None = None, embedder: Any = None,
              max_turns: int = 10, plot: Path | str | None = None) -> dict[str, Any]:
    """A simulated deployment: the online learner (from the rule policy) against the rule
    policy and the oracle on the same simulated users, dialogue by dialogue (each user
    gives up after ``max_turns`` messages).

    Returns per-window success and reward (rating included), the cumulative regret
    against the oracle of the learner and of the rule policy, and ``exceeds_after``: the
    first window from which the learner's mean reward per window stays above the rule
    policy's. ``plot`` writes a PNG of the regret curves and the windows.
    """
    import tempfile

    from dialoop.policy.simulation import SIM_USER, Simulation

    preference = preference or Preference()
    out: dict[str, Any] = {"dialogues": dialogues, "seed": seed, "window": window,
                           "max_turns": max_turns,
                           "exploration": exploration, "preference": dataclasses.asdict(
                               preference)}
    with Simulation(domain, noise=noise, seed=seed, embedder=embedder,
                    max_turns=max_turns) as sim, \
            tempfile.TemporaryDirectory(prefix="dialoop-online-") as home:
        sim.classifier = _RememberingClassifier(sim.classifier)  # type: ignore[assignment]
        rule = RulePolicy(domain)
        learner = OnlineLearner(domain, Path(home), scope="global", exploration=exploration,
                                alpha=alpha, seed=seed)
        policies: dict[str, Policy] = {"rule": rule, "online": OnlinePolicy(rule, learner),
                                       "oracle": _Obliging(rule, preference, sim.mdp)}
        runs: dict[str, list[tuple[bool, float]]] = {name: [] for name in policies}
        for name, policy in policies.items():
            manager = sim.manager(policy)
            for i in range(dialogues):
                steps: list[dict[str, Any]] = []
                with learner.serving(SIM_USER):
                    result = sim.run(i, manager, on_turn=lambda p, seen=steps: seen.extend(
                        s.to_dict() for s in p.trace.steps))
                rating = preference.rating([s["action"] for s in steps], result.success,
                                           result.turns)
                reward = dialogue_reward(domain.spec.reward, turns=result.turns,
                                         success=result.success,
                                         handed_off=result.handed_off, rating=rating)
                runs[name].append((result.success, reward))
                if name == "online":
                    learner.learn(SIM_USER, steps, reward)
        out["explored"] = round(learner.explored / max(learner.decisions, 1), 4)
    oracle = np.array([r for _, r in runs["oracle"]])
    for name, run in runs.items():
        success = np.array([s for s, _ in run], dtype=float)
        reward = np.array([r for _, r in run])
        n = len(run) // window
        out[name] = {
            "success": round(float(success.mean()), 4), "reward": round(float(reward.mean()), 3),
            "window_success": [round(float(w.mean()), 3) for w in
                               np.split(success[:n * window], n)] if n else [],
            "window_reward": [round(float(w.mean()), 3) for w in
                              np.split(reward[:n * window], n)] if n else [],
            "regret": [round(float(v), 2) for v in np.cumsum(oracle - reward)],
        }
    won = [o > r for o, r in zip(out["online"]["window_reward"], out["rule"]["window_reward"],
                                 strict=True)]
    first = next((i for i in range(len(won)) if all(won[i:])), None)
    out["exceeds_after"] = None if first is None else (first + 1) * window
    if plot is not None:
        plot_benchmark(out, Path(plot))
    return out


class _RememberingClassifier:
    """An intent classifier that remembers its answer per message: templated messages
    repeat, and the calibrated classifier's ``predict_proba`` is most of a simulated turn."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._seen: dict[str, Any] = {}

    def classify(self, message: str) -> Any:
        if message not in self._seen:
            self._seen[message] = self.inner.classify(message)
        return self._seen[message]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def plot_benchmark(result: Mapping[str, Any], path: Path) -> None:
    """A PNG of a :func:`benchmark` result: cumulative regret and reward per window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in ("rule", "online"):
        left.plot(result[name]["regret"], label=name)
        w = result["window"]
        right.plot([w * (i + 1) for i in range(len(result[name]["window_reward"]))],
                   result[name]["window_reward"], marker="o", label=name)
    right.plot([result["window"] * (i + 1) for i in range(len(result["oracle"]["window_reward"]))],
               result["oracle"]["window_reward"], ls="--", label="oracle")
    left.set(title="cumulative regret vs the oracle", xlabel="dialogues", ylabel="regret")
    right.set(title=f"mean reward per {result['window']} dialogues", xlabel="dialogues",
              ylabel="reward (rating included)")
    left.legend()
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
