"""Learned dialogue policies, stored as versions: added, listed, served, rolled back.

Like adapter versions (:mod:`dialoop.store.adapters`), a policy *line* (one per
domain name) has numbered versions; at most one serves. A version is a folder and a
row of a JSON index, not a database table: a policy belongs to a domain file, not to
users or sessions, and needs no query the index cannot answer::

    $DIALOOP_HOME/policies/<domain>/index.json     {"serving": 2, "versions": [...]}
    $DIALOOP_HOME/policies/<domain>/v1/policy.npz  a linear policy (weights per action)
    $DIALOOP_HOME/policies/<domain>/v2/model.zip   a Stable-Baselines3 model
    $DIALOOP_HOME/policies/<domain>/v3/hierarchical.npz  a top level and a policy per sub-task

Adding writes the files first and the index last (replaced atomically), so a crash
leaves the previous index, and the version that served keeps serving. One writer at
a time (the CLI, a training run); readers may be many.

A loaded version is a :class:`VectorPolicy`: it conforms to the ``Policy`` protocol
of :mod:`dialoop.dialogue.policy` (the manager asks it like the rule policy) and
decides from the MDP's state vector. A version remembers the state layout and the
actions it was trained with; a domain file that changed them cannot load it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.policy import Decision, Features
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.policy.mdp import MDP

__all__ = ["LinearModel", "PolicyRegistry", "PolicyVersion", "VectorPolicy"]

INDEX = "index.json"
LINEAR_FILE = "policy.npz"
SB3_FILE = "model.zip"
SB3_ALGORITHMS = ("PPO", "A2C", "DQN")
_REF = re.compile(r"^(?:v?(\d+)|serving)$")


@dataclass(frozen=True)
class LinearModel:
    """Scores per action, ``weights @ state + bias``; the best-scoring action is chosen.
    Small enough for a bandit or a test; ``weights`` is (A actions, S state entries)."""

    weights: np.ndarray
    bias: np.ndarray

    def choose(self, x: np.ndarray) -> int:
        return int(np.argmax(self.weights @ x + self.bias))


@dataclass
class PolicyVersion:
    domain: str
    version: int
    method: str  # how it was made: "rl:PPO", "supervised", "bandit", "test", …
    format: str  # "linear" | "hierarchical" | "sb3:PPO" | "sb3:A2C" | "sb3:DQN"
    status: str = "candidate"  # "candidate" | "promoted" | "rejected"
    created_at: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # state_names, actions

    @property
    def key(self) -> str:
        return f"{self.domain}@v{self.version}"


class VectorPolicy:
    """A learned policy as the manager sees it: features → state vector → action."""

    def __init__(self, mdp: MDP, choose: Callable[[np.ndarray], int], name: str) -> None:
        self.mdp = mdp
        self.choose = choose
        self.name = name

    def decide(self, features: Features) -> Decision:
        action = self.mdp.action(self.choose(self.mdp.vector(features)))
        return Decision(action, f"learned policy {self.name}", self.name)


class PolicyRegistry:
    """The policy versions of every domain, under ``home``."""

    def __init__(self, home: Path) -> None:
        self.root = Path(home) / "policies"

    def add(self, domain: Domain, model: Any, *, method: str,
            report: dict[str, Any] | None = None) -> PolicyVersion:
        """Store ``model`` (a :class:`LinearModel` or a Stable-Baselines3 model trained on
        this domain's MDP) as the next version, a candidate."""
        mdp = MDP.of(domain)
        line = self._line(domain.name)
        staging = line / f".staging-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            fmt = _save(model, staging, mdp)
            index = self._index(domain.name)
            version = max((v["version"] for v in index["versions"]), default=0) + 1
            final = line / f"v{version}"
            shutil.rmtree(final, ignore_errors=True)  # debris of a crash before the index
            staging.rename(final)
            row = PolicyVersion(domain.name, version, method, fmt, created_at=_now(),
                                report=report or {},
                                meta={"state_names": list(mdp.state_names),
                                      "actions": list(mdp.actions)})
            index["versions"].append(asdict(row))
            self._write(domain.name, index)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return row

    def versions(self, domain: str) -> list[PolicyVersion]:
        return [PolicyVersion(**v) for v in self._index(domain)["versions"]]

    def serving(self, domain: str) -> PolicyVersion | None:
        index = self._index(domain)
        return None if index["serving"] is None else self.get(domain, index["serving"])

    def get(self, domain: str, version: int) -> PolicyVersion:
        for v in self.versions(domain):
            if v.version == version:
                return v
        raise NotFoundError(f"No policy {domain}@v{version}: `dialoop simulate --help` "
                            "says how policies are chosen.")

    def promote(self, domain: str, version: int) -> PolicyVersion:
        """Make ``version`` the one that serves for ``domain``."""
        return self._set(domain, version, promote=True)

    def reject(self, domain: str, version: int, report: dict[str, Any] | None = None) -> None:
        index = self._index(domain)
        row = self._row(index, domain, version)
        row["status"] = "rejected"
        if report is not None:
            row["report"] = report
        self._write(domain, index)

    def set_report(self, domain: str, version: int, report: dict[str, Any]) -> None:
        """Replace the report of ``version`` (the gate adds its verdict to training's)."""
        index = self._index(domain)
        self._row(index, domain, version)["report"] = report
        self._write(domain, index)

    def rollback(self, domain: str, version: int | None) -> PolicyVersion | None:
        """Serve an earlier promoted ``version`` again, or none (back to the rule policy)."""
        if version is None:
            index = self._index(domain)
            index["serving"] = None
            self._write(domain, index)
            return None
        return self._set(domain, version, promote=False)

    def load(self, domain: Domain, ref: str | int = "serving") -> VectorPolicy:
        """The policy ``ref`` names: ``serving``, ``vN`` or ``N``."""
        if isinstance(ref, int):
            row = self.get(domain.name, ref)
        else:
            m = _REF.match(ref.strip())
            if not m:
                raise InvalidInputError(f"Invalid policy version {ref!r}: use vN, N or serving.")
            row = self.get(domain.name, int(m[1])) if m[1] else self.serving(domain.name)
            if row is None:
                raise NotFoundError(f"No policy version serves for domain {domain.name!r}.")
        mdp = MDP.of(domain)
        if row.meta.get("state_names") != list(mdp.state_names) or \
                row.meta.get("actions") != list(mdp.actions):
            raise InvalidInputError(
                f"Policy {row.key} was trained for another layout of domain {domain.name!r} "
                "(its intents, slots, tools or knowledge changed since): train it again."
            )
        return VectorPolicy(mdp, _load(row.format, self._line(domain.name) / f"v{row.version}"),
                            row.key)

    # -- internals ----------------------------------------------------------------------

    def _set(self, domain: str, version: int, *, promote: bool) -> PolicyVersion:
        index = self._index(domain)
        row = self._row(index, domain, version)
        if promote and row["status"] == "rejected":
            raise InvalidInputError(f"{domain}@v{version} was rejected; promote another version.")
        if not promote and row["status"] != "promoted":
            raise InvalidInputError(f"{domain}@v{version} never served ({row['status']}); roll "
                                    "back to a version that was promoted, or to none.")
        row["status"] = "promoted"
        index["serving"] = version
        self._write(domain, index)
        return PolicyVersion(**row)

    @staticmethod
    def _row(index: dict[str, Any], domain: str, version: int) -> dict[str, Any]:
        for row in index["versions"]:
            if row["version"] == version:
                return row
        raise NotFoundError(f"No policy {domain}@v{version}.")

    def _line(self, domain: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", domain)
        return self.root / safe

    def _index(self, domain: str) -> dict[str, Any]:
        path = self._line(domain) / INDEX
        if not path.exists():
            return {"serving": None, "versions": []}
        return json.loads(path.read_text("utf-8"))

    def _write(self, domain: str, index: dict[str, Any]) -> None:
        path = self._line(domain) / INDEX
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(index, indent=2), "utf-8")
        os.replace(tmp, path)


def _save(model: Any, folder: Path, mdp: MDP) -> str:
    if isinstance(model, LinearModel):
        expected = (len(mdp.actions), len(mdp.state_names))
        if model.weights.shape != expected or model.bias.shape != expected[:1]:
            raise InvalidInputError(f"A linear policy of this domain has weights {expected} and "
                                    f"bias ({expected[0]},); got {model.weights.shape} and "
                                    f"{model.bias.shape}.")
        np.savez(folder / LINEAR_FILE, weights=model.weights, bias=model.bias)
        return "linear"
    if type(model).__name__ == "HierarchicalModel":  # dialoop.policy.hierarchical
        model.save(folder)
        return "hierarchical"
    algorithm = type(model).__name__
    if type(model).__module__.startswith("stable_baselines3") and algorithm in SB3_ALGORITHMS:
        model.save(folder / SB3_FILE)
        return f"sb3:{algorithm}"
    raise InvalidInputError(f"Cannot store a {type(model).__name__} as a policy: use a "
                            "LinearModel, a HierarchicalModel or a Stable-Baselines3 "
                            f"{'/'.join(SB3_ALGORITHMS)}.")


def _load(fmt: str, folder: Path) -> Callable[[np.ndarray], int]:
    if fmt == "linear":
        with np.load(folder / LINEAR_FILE) as data:
            return LinearModel(data["weights"], data["bias"]).choose
    if fmt == "hierarchical":
        from dialoop.policy.hierarchical import HierarchicalModel

        return HierarchicalModel.load(folder).choose
    kind, _, algorithm = fmt.partition(":")
    if kind == "sb3" and algorithm in SB3_ALGORITHMS:
        import stable_baselines3

        model = getattr(stable_baselines3, algorithm).load(folder / SB3_FILE, device="cpu")
        return lambda x: int(model.predict(x, deterministic=True)[0])
    raise InvalidInputError(f"Unknown policy format {fmt!r} in {folder}.")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
