"""The dialogue as a Markov decision process, derived from any domain file.

A *step* of the MDP is one decision of the policy inside a turn (the manager asks
the policy again after a look-up or a tool call), so a learned policy decides exactly
where the rule policy does and can replace it behind the same ``Policy`` protocol.

- **State**: a fixed-length float vector computed from the policy's
  :class:`~dialoop.dialogue.policy.Features` alone (what the manager gives any policy
  while serving, so what is learned in simulation is what is seen in production).
  :attr:`MDP.state_names` names every entry::

      intent=NAME (one-hot, with intent=none)  confident  out_of_domain  continued
      filled SLOT, missing SLOT (per slot)      needs_confirmation  confirmed  denied
      corrected (the "no" carried the right value: the read-back is repeated, not "what
      should I change?")
      acted=none | look_up | call_tool:NAME (one-hot)  tool_failed  evidence_found
      handed_off  turns (user turns so far / MAX_TURNS, capped at 1)

  The intent's confidence enters as ``confident`` (calibrated probability at or above
  the domain's ``confidence_threshold``): the manager does not hand the probability
  itself to policies.
- **Actions**: :attr:`MDP.actions`, the policy's actions with their arguments for this
  domain: ``answer``, ``hand_off``, ``look_up`` (if the domain has knowledge),
  ``call_tool:NAME`` per tool, and ``clarify:TARGET`` per thing a question can be
  about (``intent``, ``confirm``, ``change``, ``more`` and each slot an intent uses).
  The manager's guards keep every action safe (a tool without its arguments becomes
  the question for them, …), so every action is always allowed.
- **Reward**: the domain's ``reward:`` section (:class:`~dialoop.dialogue.domain.RewardSpec`):
  task success or failure at the end, a cost per user turn and per hand-off, and the
  user's rating when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dialoop.dialogue.domain import Domain, RewardSpec
from dialoop.dialogue.policy import Features
from dialoop.errors import InvalidInputError

__all__ = ["CLARIFY_TARGETS", "MAX_TURNS", "MDP", "dialogue_reward"]

CLARIFY_TARGETS = ("intent", "confirm", "change", "more")
"""What a clarifying question can be about besides a slot (see ``clarify_target``)."""

MAX_TURNS = 10
"""The turn count in the state vector is divided by this (and capped at 1)."""


@dataclass(frozen=True)
class MDP:
    """State layout, action list and reward of one domain."""

    domain: Domain
    actions: tuple[str, ...]
    state_names: tuple[str, ...]

    @classmethod
    def of(cls, domain: Domain) -> MDP:
        spec = domain.spec
        slots = [s for s in spec.slots if any(s in domain.intent_slots(i) for i in spec.intents)]
        actions = ["answer", "hand_off"]
        if spec.knowledge:
            actions.append("look_up")
        actions += [f"call_tool:{t}" for t in spec.tools]
        actions += [f"clarify:{t}" for t in (*CLARIFY_TARGETS, *slots)]
        names = [f"intent={i}" for i in (*spec.intents, "none")]
        names += ["confident", "out_of_domain", "continued"]
        names += [f"filled {s}" for s in spec.slots] + [f"missing {s}" for s in spec.slots]
        names += ["needs_confirmation", "confirmed", "denied", "corrected"]
        names += [f"acted={a}" for a in ("none", "look_up", *(f"call_tool:{t}"
                                                               for t in spec.tools))]
        names += ["tool_failed", "evidence_found", "handed_off", "turns"]
        return cls(domain, tuple(actions), tuple(names))

    @property
    def reward(self) -> RewardSpec:
        return self.domain.spec.reward

    # -- state ------------------------------------------------------------------------

    def vector(self, f: Features) -> np.ndarray:
        """The state vector of ``f``, shape (len(state_names),), float32 in [0, 1]."""
        spec = self.domain.spec
        intent = f.intent if f.intent in spec.intents else "none"
        acted = f.acted if f.acted in ("look_up", *(f"call_tool:{t}" for t in spec.tools)) \
            else "none"
        on = {f"intent={intent}", f"acted={acted}"}
        on |= {f"filled {s}" for s in f.filled} | {f"missing {s}" for s in f.missing}
        for name in ("confident", "out_of_domain", "continued", "needs_confirmation",
                     "confirmed", "denied", "corrected", "tool_failed", "evidence_found",
                     "handed_off"):
            if getattr(f, name):
                on.add(name)
        x = np.array([1.0 if n in on else 0.0 for n in self.state_names], dtype=np.float32)
        x[-1] = min(f.turns, MAX_TURNS) / MAX_TURNS
        return x

    # -- actions ----------------------------------------------------------------------

    def action(self, index: int) -> str:
        if not 0 <= index < len(self.actions):
            raise InvalidInputError(
                f"No action {index} in domain {self.domain.name!r}: there are "
                f"{len(self.actions)} (0-{len(self.actions) - 1})."
            )
        return self.actions[index]

    def index(self, action: str, f: Features | None = None) -> int:
        """The index of a policy's action; a bare ``clarify`` (the rules' way: the manager
        picks the target) needs the features to say what it would be about."""
        if action == "clarify":
            if f is None:
                raise InvalidInputError("A bare 'clarify' needs the features to resolve it.")
            action = f"clarify:{_clarify_target(f)}"
        try:
            return self.actions.index(action)
        except ValueError:
            raise InvalidInputError(
                f"{action!r} is not an action of domain {self.domain.name!r}: "
                f"choose one of {', '.join(self.actions)}."
            ) from None


def _clarify_target(f: Features) -> str:
    """What the manager's ``clarify_target`` would choose, from the features alone."""
    if not f.confident and not f.out_of_domain:
        return "intent"
    if f.missing:
        return f.missing[0]
    if f.needs_confirmation:
        return "change" if f.denied and not f.corrected else "confirm"
    return "more"


def dialogue_reward(spec: RewardSpec, *, turns: int, success: bool, handed_off: bool,
                    rating: float | None = None) -> float:
    """What a whole dialogue is worth under ``spec`` (see :class:`RewardSpec`)."""
    if rating is not None and not -1.0 <= rating <= 1.0:
        raise InvalidInputError(f"A rating is between -1 and 1 (got {rating}).")
    total = spec.success if success else spec.failure
    total += spec.turn * turns + (spec.hand_off if handed_off else 0.0)
    return total + (spec.rating * rating if rating is not None else 0.0)
