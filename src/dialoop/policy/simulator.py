"""An agenda-based user simulator, built from any domain file.

A simulated user has a **goal**: an intent and values for its slots (all required
ones, each optional one with probability one half), sampled from the domain itself:
enum values, the knowledge's entity names, and the numbers, emails, … that the
domain's examples and stories use. The **task** of the goal is what the domain's own
rules do with that intent once nothing is missing (:func:`goal_task`): call a tool,
look the facts up and answer, hand off, or just answer.

The user speaks in **templated language made from the domain's examples**: an
example of the intent with its slot values cut out ("Check order {order_number}
please") and the goal's values put in (an enum value as one of its synonyms), plus
short informs ("my email is …") for the values asked for. Every message goes through
the real understanding of the real :class:`~dialoop.dialogue.manager.DialogueManager`
(intent classifier, slot extraction, state tracking); only the manager's decision is
read back (the trace's actions and tool calls), never its wording, so no language
model runs.

The user's **agenda**: the request first (with some values), then whatever the
assistant asks for: a value, yes or no to a read-back (no with the right value when
the read-back is wrong), the request again when the assistant is unsure what it is
about or does the wrong thing. **Noise** (:class:`Noise`, each a probability):

- ``intent``: a request comes out as another intent's (as if misheard); the user
  says it again when the assistant acts on the wrong one;
- ``value``: a value is first given wrong and corrected in the next message ("no,
  order 5521, not 5512") — at the read-back if there is one;
- ``goal_change``: after the first turn the user drops the goal for another one
  (values of shared slots carry over); success is judged on the new goal;
- ``impatience``: the user gives up after :data:`IMPATIENT_PATIENCE` unhelpful turns
  (a question about the intent, a value already given, or a wrong answer).

**Success**: the task of the (final) goal was done: its tool called with the goal's
values (whatever the tool answered: the world may say "no such order"), its facts
looked up and answered for that intent, the hand-off it asked for, or an answer for
that intent; and no hand-off the user did not ask for. Each dialogue draws its
randomness from (seed, its number), so a run is reproducible and dialogue *i* is the
same whatever ran before it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.lookup import Lookup
from dialoop.dialogue.manager import TurnPlan
from dialoop.dialogue.policy import Features, RulePolicy
from dialoop.dialogue.state import normalize_value
from dialoop.errors import ConfigError

__all__ = ["IMPATIENT_PATIENCE", "Goal", "Noise", "SimulatedUser", "UserModel", "goal_task"]

IMPATIENT_PATIENCE = 2
"""Unhelpful turns an impatient user puts up with: at this many they give up."""

_INFORM = ("{v}", "it's {v}", "my {label} is {v}", "{label}: {v}", "{v} please")
_AFFIRM = ("yes", "yes please", "correct", "sure, go ahead", "yep")
_DENY = "no, {label} {right}, not {wrong}"
_CORRECT = "sorry, I meant {label} {right}, not {wrong}"
_SWITCH = "actually, forget that. "
_UNKNOWN = "I don't know"


@dataclass(frozen=True)
class Noise:
    """How often a simulated user is hard to serve (each a probability, 0 to 1)."""

    intent: float = 0.0
    value: float = 0.0
    goal_change: float = 0.0
    impatience: float = 0.0

    def __post_init__(self) -> None:
        for name in ("intent", "value", "goal_change", "impatience"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"Noise {name} is a probability: between 0 and 1 (got {p}).")

    @classmethod
    def uniform(cls, p: float) -> Noise:
        """Every kind of noise at probability ``p`` (``dialoop simulate --noise P``)."""
        return cls(p, p, p, p)


@dataclass(frozen=True)
class Goal:
    intent: str
    slots: dict[str, Any]
    task: str  # "call_tool:NAME" | "look_up" | "hand_off" | "answer"


def goal_task(domain: Domain, intent: str) -> str:
    """What the domain's rules do with ``intent`` once it is sure and nothing is missing."""
    ood = domain.spec.understanding.out_of_domain_intent
    f = Features(intent=intent, confident=True, out_of_domain=intent == ood, missing=(),
                 needs_confirmation=False, denied=False, acted=None, tool_failed=False,
                 evidence_found=False, handed_off=False)
    action = RulePolicy(domain).decide(f).action
    return "answer" if action.startswith("clarify") else action


class UserModel:
    """What simulated users of one domain can want and say (built once per domain)."""

    def __init__(self, domain: Domain, lookup: Lookup | None = None) -> None:
        self.domain = domain
        self.values = _value_pools(domain, lookup)  # slot → {value: [phrases]}
        self.tasks = {i: goal_task(domain, i) for i in domain.spec.intents}
        self.templates = {i: [_template(domain, i, e, self.values) for e in spec.examples]
                          for i, spec in domain.spec.intents.items()}
        for intent in domain.spec.intents:
            for slot in domain.intent_slots(intent):
                if not self.values.get(slot):
                    raise ConfigError(
                        f"Domain {domain.name!r}: no values to simulate slot {slot!r} with; "
                        "use it in an intent example or a story (policy.stories)."
                    )

    def goal(self, rng: random.Random, *, other_than: str | None = None) -> Goal:
        intents = [i for i in self.domain.spec.intents if i != other_than and self.templates[i]]
        intent = rng.choice(intents)
        spec = self.domain.spec.intents[intent]
        wanted = list(spec.requires) + [s for s in spec.uses if rng.random() < 0.5]
        slots = {s: rng.choice(sorted(self.values[s], key=str)) for s in dict.fromkeys(wanted)}
        return Goal(intent, slots, self.tasks[intent])

    def request(self, goal: Goal, rng: random.Random, say: Callable[[str], Any], *,
                intent: str | None = None) -> tuple[str, dict[str, Any]]:
        """A message asking for ``goal`` (in the words of ``intent``, when misheard) and the
        values it gives; ``say(slot)`` is the value the user gives for a slot."""
        usable = [t for t in self.templates[intent or goal.intent] if set(t[1]) <= set(goal.slots)]
        text, slots = rng.choice(usable or [((intent or goal.intent).replace("_", " "), ())])
        given = {slot: say(slot) for slot in slots}
        for slot, value in given.items():
            text = text.replace("{" + slot + "}", self.phrase(slot, value, rng), 1)
        for slot in goal.slots:  # say some of the other values up front
            if slot not in given and intent is None and rng.random() < 0.5:
                given[slot] = say(slot)
                # ", " not ". ": a period right after a number reads as a decimal point
                text += (", " if text[-1:].isalnum() else " ") + self.inform(slot, given[slot],
                                                                             rng)
        return text, given

    def inform(self, slot: str, value: Any, rng: random.Random) -> str:
        label = self.domain.slot_label(slot)
        return rng.choice(_INFORM).format(v=self.phrase(slot, value, rng), label=label)

    def phrase(self, slot: str, value: Any, rng: random.Random) -> str:
        return rng.choice(self.values[slot].get(value) or [str(value)])


@dataclass
class SimulatedUser:
    """One simulated user, in one dialogue: ``opening()``, then ``reply(plan)`` per answer
    until it returns None; then ``success``, ``ended`` and ``turns`` say how it went."""

    model: UserModel
    noise: Noise
    rng: random.Random
    max_turns: int = 10
    goal: Goal = field(init=False)
    told: dict[str, Any] = field(default_factory=dict)  # what the user has said, per slot
    wrong: dict[str, Any] = field(default_factory=dict)  # wrong values still to correct
    turns: int = 0
    unhelpful: int = 0
    success: bool = False
    handed_off: bool = False
    ended: str = ""
    events: list[str] = field(default_factory=list)  # the noise that happened

    def __post_init__(self) -> None:
        self.goal = self.model.goal(self.rng)
        self.patience = IMPATIENT_PATIENCE if self._chance(self.noise.impatience,
                                                           "impatient") else None
        self._switch = self._chance(self.noise.goal_change, "goal change")

    def opening(self) -> str:
        self.turns = 1
        return self._request()

    def reply(self, plan: TurnPlan) -> str | None:
        """The user's next message after the assistant's turn ``plan`` (None: the end)."""
        trace, state = plan.trace, plan.state
        self.handed_off = self.handed_off or state.handed_off
        if self._done(plan):
            return self._end("success", success=True)
        if state.handed_off:
            return self._end("handed off")
        if self.turns >= self.max_turns:
            return self._end("turn limit")
        action = trace.action
        helpful = action == "clarify:confirm" or action == "clarify:change" or (
            action.startswith("clarify:") and action[8:] in self.goal.slots
            and state.slots.get(action[8:]) != self._value(action[8:]))
        if not helpful:
            self.unhelpful += 1
            if self.patience is not None and self.unhelpful >= self.patience:
                return self._end("gave up")
        self.turns += 1
        if self._switch and self.turns == 2:
            self._switch = False
            old = self.goal
            self.goal = self.model.goal(self.rng, other_than=old.intent)
            shared = {s: v for s, v in old.slots.items() if s in self.goal.slots}
            self.goal = Goal(self.goal.intent, {**self.goal.slots, **shared}, self.goal.task)
            self.told, self.wrong = {}, {}
            return _SWITCH + self._request()
        return self._answer(action, state.confirming or {})

    # -- what the user says -------------------------------------------------------------

    def _answer(self, action: str, read_back: Mapping[str, Any]) -> str:
        kind, _, target = action.partition(":")
        if self.wrong:  # a value was given wrong: correct it now (at the read-back if any)
            slot, wrong = next(iter(self.wrong.items()))
            del self.wrong[slot]
            self.told[slot] = self._value(slot)
            template = _DENY if target == "confirm" else _CORRECT
            return template.format(label=self.model.domain.slot_label(slot),
                                   right=self.model.phrase(slot, self._value(slot), self.rng),
                                   wrong=self.model.phrase(slot, wrong, self.rng))
        if kind == "clarify" and target == "confirm":
            if all(read_back.get(s) == self._value(s) for s in read_back if s in self.goal.slots):
                return self.rng.choice(_AFFIRM)
            slot = next(s for s in read_back if s in self.goal.slots
                        and read_back[s] != self._value(s))
            return _DENY.format(label=self.model.domain.slot_label(slot),
                                right=self.model.phrase(slot, self._value(slot), self.rng),
                                wrong=self.model.phrase(slot, read_back[slot], self.rng))
        if kind == "clarify" and target in self.model.domain.spec.slots:
            if target not in self.goal.slots:
                return _UNKNOWN
            return self._give(target)
        if kind == "clarify" and target == "change" and self.goal.slots:
            return self._give(next(iter(self.goal.slots)))
        return self._request()  # unsure what we want, or the wrong thing done: say it again

    def _request(self) -> str:
        intent = None
        if self._chance(self.noise.intent, "misheard intent"):
            intent = self.rng.choice([i for i in self.model.domain.spec.intents
                                      if i != self.goal.intent and self.model.templates[i]])
        text, given = self.model.request(self.goal, self.rng, self._say, intent=intent)
        for slot, value in given.items():
            self._said(slot, value)
        return text

    def _give(self, slot: str) -> str:
        value = self._say(slot)
        self._said(slot, value)
        return self.model.inform(slot, value, self.rng)

    def _say(self, slot: str) -> Any:
        """The value the user says for ``slot``: the goal's, or (noise, first time) another."""
        right = self._value(slot)
        others = [v for v in self.model.values[slot] if v != right]
        if slot not in self.told and others and self._chance(self.noise.value, f"wrong {slot}"):
            return self.rng.choice(sorted(others, key=str))
        return right

    def _said(self, slot: str, value: Any) -> None:
        self.told[slot] = value
        if value != self._value(slot):
            self.wrong[slot] = value
        else:
            self.wrong.pop(slot, None)

    # -- how it went ----------------------------------------------------------------------

    def _done(self, plan: TurnPlan) -> bool:
        """Did this turn do the goal's task?"""
        trace, task = plan.trace, self.goal.task
        if plan.state.handed_off or task == "hand_off":
            return plan.state.handed_off and task == "hand_off"
        served = trace.understood.get("intent") == self.goal.intent
        if task.startswith("call_tool:"):
            return any(c["name"] == task[10:] and self._right_arguments(c["name"], c["arguments"])
                       for c in trace.tool_calls)
        if task == "look_up":
            return served and trace.action == "answer" and any(
                s.action == "look_up" for s in trace.steps)
        return served and trace.action == "answer"

    def _right_arguments(self, tool: str, arguments: Mapping[str, Any]) -> bool:
        """Every parameter of ``tool`` that the goal has a value for got that value."""
        domain = self.model.domain
        binding = domain.spec.tools[tool].arguments
        for param in domain.spec.tools[tool].parameters.get("properties", {}):
            slot = binding.get(param, param)
            if slot in self.goal.slots and arguments.get(param) != self._value(slot):
                return False
        return True

    def _value(self, slot: str) -> Any:
        return self.goal.slots.get(slot)

    def _end(self, how: str, *, success: bool = False) -> str | None:
        self.ended, self.success = how, success
        return None

    def _chance(self, p: float, event: str) -> bool:
        if p > 0 and self.rng.random() < p:
            self.events.append(event)
            return True
        return False


# -- what the domain offers to say ------------------------------------------------------------


def _value_pools(domain: Domain, lookup: Lookup | None) -> dict[str, dict[Any, list[str]]]:
    """Per slot, the values a user may want, each with the phrases that say it."""
    pools: dict[str, dict[Any, list[str]]] = {}
    texts = [e for spec in domain.spec.intents.values() for e in spec.examples]
    texts += [t.user for story in domain.stories for t in story.turns]
    for name, spec in domain.spec.slots.items():
        pool: dict[Any, list[str]] = {}
        if spec.type == "enum":
            values = spec.values or []
            synonyms = values if isinstance(values, dict) else {v: [] for v in values}
            pool = {v: [v.replace("_", " "), *s] for v, s in synonyms.items()}
        elif spec.type == "entity" and lookup is not None and spec.entity:
            aliases = getattr(lookup, "aliases", None)
            names = aliases(spec.entity) if callable(aliases) else {
                n: [n] for n in lookup.entities(spec.entity)}
            pool = {n: list(a) for n, a in names.items()}
        elif spec.type in ("number", "text") and spec.pattern:
            for text in texts:
                for m in re.finditer(spec.pattern, text, re.I):
                    value = normalize_value(domain, name, m.group(0))
                    pool.setdefault(value, [m.group(0)])
        for story in domain.stories:  # values the stories give (free text, dates, …)
            for turn in story.turns:
                for slot, value in (turn.slots or {}).items():
                    if slot == name and spec.type not in ("enum", "entity"):
                        value = normalize_value(domain, slot, value)
                        pool.setdefault(value, [str(value)])
        pools[name] = pool
    return pools


def _template(domain: Domain, intent: str, example: str,
              values: Mapping[str, Mapping[Any, Sequence[str]]]) -> tuple[str, tuple[str, ...]]:
    """An example with its slot values cut out: ("Check order {order_number} please",
    ("order_number",))."""
    text, slots = example.replace("{", "(").replace("}", ")"), []
    for name in domain.intent_slots(intent):
        spec = domain.spec.slots[name]
        if spec.pattern and spec.type in ("number", "text"):
            pattern = spec.pattern
        else:
            phrases = sorted({p for ps in values.get(name, {}).values() for p in ps},
                             key=len, reverse=True)
            if not phrases:
                continue
            pattern = r"\b(?:" + "|".join(re.escape(p) for p in phrases) + r")\b"
        text, n = re.subn(pattern, "{" + name + "}", text, count=1, flags=re.I)
        if n:
            slots.append(name)
    return text, tuple(slots)
