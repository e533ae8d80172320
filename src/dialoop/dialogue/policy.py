"""Deciding what to do next: a rule policy from the domain file, and a learned policy.

A policy sees :class:`Features` (the intent, whether it is trusted, which required
slots are missing, whether a look-up or tool already ran in this turn, …) and
returns one :class:`Decision`: an action label (``answer``, ``clarify``,
``look_up``, ``call_tool:NAME``, ``hand_off``) and why.

- :class:`RulePolicy`: the domain's rules, in order; the first whose condition
  holds decides. The reason names the rule.
- :class:`LearnedPolicy`: a decision tree over the same features, trained on the
  domain's example dialogues (``policy.stories``). The reason lists the tests on
  the tree's path. Where the tree is unsure (probability below ``policy.backoff``)
  it defers to the rules, so it cannot be worse there than they are.

Training replays each story through the same state tracking the manager uses
(:func:`~dialoop.dialogue.state.advance`), with the story's intents and slot
values standing in for the classifier's, and records the features seen before
each of the story's actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from dialoop.dialogue.domain import Condition, Domain, Rule, Script
from dialoop.dialogue.state import DialogueState, Understanding, advance, normalize_value
from dialoop.errors import ConfigError

__all__ = [
    "Decision",
    "Features",
    "LearnedPolicy",
    "Policy",
    "RulePolicy",
    "apply_effect",
    "clarify_target",
    "make_policy",
    "replay",
]

TERMINAL = ("answer", "clarify", "hand_off")


@dataclass(frozen=True)
class Features:
    """What a policy may look at, at one step of a turn."""

    intent: str | None
    confident: bool
    out_of_domain: bool
    missing: tuple[str, ...]  # required slots of the intent without a value
    needs_confirmation: bool
    denied: bool
    acted: str | None  # the last non-final action of this turn: look_up or call_tool:NAME
    tool_failed: bool
    evidence_found: bool
    handed_off: bool
    # What learned policies see besides (dialoop.policy.mdp); the rules do not test them.
    filled: tuple[str, ...] = ()  # slots that have a value
    confirmed: bool = False  # the user said yes to the values read back
    continued: bool = False  # the message answered the assistant's question
    turns: int = 0  # user turns so far, this one included
    corrected: bool = False  # the "no" came with the right value ("no, order 5521")

    @classmethod
    def of(cls, domain: Domain, understood: Understanding, state: DialogueState, *,
           acted: str | None = None, tool_failed: bool = False,
           evidence_found: bool = False) -> Features:
        return cls(
            intent=understood.intent,
            confident=understood.confident,
            out_of_domain=understood.out_of_domain,
            missing=tuple(state.missing(domain, understood.intent)),
            needs_confirmation=state.needs_confirmation(domain),
            denied=understood.denied,
            acted=acted,
            tool_failed=tool_failed,
            evidence_found=evidence_found,
            handed_off=state.handed_off,
            filled=tuple(state.slots),
            confirmed=state.confirmed is not None,
            continued=understood.continued,
            turns=state.turns,
            corrected=understood.denied and bool(understood.updates),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "confident": self.confident,
                "out_of_domain": self.out_of_domain, "missing": list(self.missing),
                "needs_confirmation": self.needs_confirmation, "denied": self.denied,
                "acted": self.acted, "tool_failed": self.tool_failed,
                "evidence_found": self.evidence_found, "handed_off": self.handed_off,
                "filled": list(self.filled), "confirmed": self.confirmed,
                "continued": self.continued, "turns": self.turns, "corrected": self.corrected}


@dataclass(frozen=True)
class Decision:
    action: str  # "answer" | "clarify" | "look_up" | "call_tool:NAME" | "hand_off"
    why: str
    policy: str  # "rule" | "learned"
    respond: str | None = None  # a template named by the rule


class Policy(Protocol):
    name: str

    def decide(self, features: Features) -> Decision: ...


class RulePolicy:
    """The domain's rules, first match wins."""

    name = "rule"

    def __init__(self, domain: Domain) -> None:
        self.rules = list(domain.spec.policy.rules)

    def decide(self, features: Features) -> Decision:
        for i, rule in enumerate(self.rules, 1):
            if _holds(rule.when, features):
                return Decision(rule.action, f"rule {i}: {_describe(rule)}", self.name,
                                rule.respond)
        return Decision("answer", "no rule applies: answer", self.name)


class LearnedPolicy:
    """A decision tree trained on the domain's stories, deferring to the rules when unsure."""

    name = "learned"

    def __init__(self, domain: Domain, stories: Sequence[Script] | None = None, *,
                 seed: int = 0) -> None:
        from sklearn.tree import DecisionTreeClassifier

        stories = domain.stories if stories is None else stories
        examples = [pair for story in stories for pair in replay(domain, story)]
        if not examples:
            raise ConfigError(
                f"The learned policy of domain {domain.name!r} has no stories to learn from: "
                "set policy.stories in the domain file."
            )
        self.domain = domain
        self.rules = RulePolicy(domain)
        self.backoff = domain.spec.policy.backoff
        self._columns = _columns(domain)
        X = np.array([self._vector(f) for f, _ in examples])  # (N examples, F features)
        y = np.array([label for _, label in examples])
        self._tree = DecisionTreeClassifier(random_state=seed, min_samples_leaf=1).fit(X, y)
        self.examples = len(examples)
        self.accuracy = float((self._tree.predict(X) == y).mean())  # on its own stories

    def decide(self, features: Features) -> Decision:
        x = np.array([self._vector(features)])  # (1, F)
        probs = self._tree.predict_proba(x)[0]
        best = int(np.argmax(probs))
        action, p = str(self._tree.classes_[best]), float(probs[best])
        if p < self.backoff:
            rule = self.rules.decide(features)
            return Decision(rule.action, f"learned policy unsure (p={p:.2f} for {action}); "
                            f"{rule.why}", self.name, rule.respond)
        # A story may name the answer's template ("answer:utter_greet", from a Rasa import);
        # after a failed tool the failure is said instead (no story wording papers over it).
        kind, _, respond = action.partition(":")
        if kind == "answer" and respond:
            said = respond if self.domain.has_template(respond) and not features.tool_failed \
                else None
            return Decision("answer", f"learned policy (p={p:.2f}): {self._path(x)}", self.name,
                            said)
        return Decision(action, f"learned policy (p={p:.2f}): {self._path(x)}", self.name)

    def _vector(self, f: Features) -> list[float]:
        return [float(test(f)) for _, test in self._columns]

    def _path(self, x: np.ndarray) -> str:
        """The tests on the tree's path to its decision, e.g. 'intent=order_status, not acted'."""
        tree = self._tree.tree_
        nodes = self._tree.decision_path(x).indices
        parts = []
        for node in nodes:
            column = tree.feature[node]
            if column < 0:  # a leaf
                continue
            name = self._columns[column][0]
            parts.append(name if x[0, column] > tree.threshold[node] else f"not {name}")
        return ", ".join(parts) or "always"


def make_policy(domain: Domain, kind: str | None = None) -> Policy:
    """The policy ``kind`` ("rule" or "learned"; default: the domain's choice)."""
    kind = kind or domain.spec.policy.default
    if kind == "rule":
        return RulePolicy(domain)
    if kind == "learned":
        return LearnedPolicy(domain)
    raise ConfigError(f"Unknown policy {kind!r}: choose 'rule' or 'learned' (a stored version, "
                      "vN or 'serving', is loaded by open_assistant from the home's registry).")


# -- shared by the manager and story replay ---------------------------------------------------


def clarify_target(domain: Domain, understood: Understanding, state: DialogueState) -> str:
    """What a clarifying question should be about: the intent, a missing slot, a confirmation."""
    if not understood.confident and not understood.out_of_domain:
        return "intent"
    missing = state.missing(domain, understood.intent)
    if missing:
        return missing[0]
    if state.needs_confirmation(domain):
        return "change" if understood.denied and not understood.updates else "confirm"
    return "more"


def apply_effect(domain: Domain, state: DialogueState, action: str) -> None:
    """How an executed action changes the state (``clarify:order_number`` asks for it, …)."""
    kind, _, target = action.partition(":")
    if kind == "clarify" and target in domain.spec.slots:
        state.requested = target
    elif kind == "clarify" and target in ("confirm", "change"):
        # After "what should I change?" the next message is still about these values.
        state.confirming = state.confirmation_values(domain)
    elif kind == "call_tool" and state.confirmed is not None:
        state.confirmed = None  # a confirmation is good for one action
    elif kind == "hand_off":
        state.handed_off = True


def replay(domain: Domain, story: Script) -> list[tuple[Features, str]]:
    """(features, action) pairs of a story, the story's annotations standing in for the NLU."""
    pairs: list[tuple[Features, str]] = []
    state = DialogueState()
    gold: dict[str, Any] = {}
    ood = domain.spec.understanding.out_of_domain_intent
    for turn in story.turns:
        if turn.slots is not None:
            gold = {k: normalize_value(domain, k, v) for k, v in turn.slots.items()}
        found = {k: v for k, v in gold.items() if state.slots.get(k) != v}
        understood = advance(state, domain, turn.user, intent=turn.intent,
                             confidence=1.0 if turn.intent else 0.0,
                             out_of_domain=turn.intent is not None and turn.intent == ood,
                             found=found)
        state = understood.state
        acted, failed, found_evidence = None, False, False
        for action in turn.actions:
            label = "clarify" if action.startswith("clarify") else action
            pairs.append((Features.of(domain, understood, state, acted=acted, tool_failed=failed,
                                      evidence_found=found_evidence), label))
            if label == "clarify" and ":" not in action:
                action = f"clarify:{clarify_target(domain, understood, state)}"
            apply_effect(domain, state, action)
            if label.startswith("call_tool"):
                acted, failed = label, turn.tool_fails
            elif label == "look_up":
                acted, found_evidence = label, True
    return pairs


# -- rules -------------------------------------------------------------------------------


def _holds(when: Condition, f: Features) -> bool:
    checks: list[bool] = []
    if when.intent is not None:
        intents = [when.intent] if isinstance(when.intent, str) else when.intent
        checks.append(f.intent in intents)
    for name in ("confident", "out_of_domain", "needs_confirmation", "denied", "tool_failed",
                 "evidence_found", "handed_off"):
        wanted = getattr(when, name)
        if wanted is not None:
            checks.append(getattr(f, name) == wanted)
    if isinstance(when.missing, bool):
        checks.append(bool(f.missing) == when.missing)
    elif when.missing is not None:
        checks.append(when.missing in f.missing)
    if isinstance(when.acted, bool):
        checks.append((f.acted is not None) == when.acted)
    elif when.acted is not None:
        wanted_act = when.acted.replace(" ", ":")
        checks.append(f.acted is not None and (f.acted == wanted_act
                                               or f.acted.startswith(wanted_act + ":")))
    return all(checks)


def _describe(rule: Rule) -> str:
    if rule.why:
        return rule.why
    conditions = rule.when.model_dump(exclude_none=True)
    text = ", ".join(f"{k}={v}" for k, v in conditions.items()) or "always"
    return f"when {text}: {rule.action}"


def _columns(domain: Domain) -> list[tuple[str, Any]]:
    """The learned policy's features: (name, test on Features) pairs."""
    columns: list[tuple[str, Any]] = [
        (f"intent={name}", lambda f, n=name: f.intent == n) for name in domain.spec.intents
    ]
    columns += [
        ("confident", lambda f: f.confident),
        ("out_of_domain", lambda f: f.out_of_domain),
        ("missing a slot", lambda f: bool(f.missing)),
        ("needs confirmation", lambda f: f.needs_confirmation),
        ("denied", lambda f: f.denied),
        ("acted", lambda f: f.acted is not None),
        ("looked up", lambda f: f.acted == "look_up"),
        ("tool failed", lambda f: f.tool_failed),
        ("evidence found", lambda f: f.evidence_found),
        ("handed off", lambda f: f.handed_off),
    ]
    columns += [(f"missing {s}", lambda f, s=s: s in f.missing) for s in domain.spec.slots]
    columns += [(f"called {t}", lambda f, t=t: f.acted == f"call_tool:{t}")
                for t in domain.spec.tools]
    return columns
