"""Scoring scripted test dialogues, like Rasa's ``rasa test`` for stories.

:func:`run_dialogues` (``dialoop eval dialogue``) runs each script through the real
assistant, in a fresh home of its own, and hands every turn's reply and stored trace
(:class:`~dialoop.evidence.DialogueTrace`) to a :class:`Scoreboard`. Per user turn
the trace is compared with the script:

- **intent accuracy**: the intent the turn served (after carrying a goal over) is the
  scripted one;
- **slot F1**: the slot values set or changed in the turn, against the script's
  changes (micro-averaged over all turns);
- **joint goal accuracy**: the whole state after the turn equals the scripted state;
- **action accuracy**: the turn's actions, in order, are the scripted ones
  (``clarify`` matches any clarification, ``clarify:email`` only that one; ``answer``
  any answer, ``answer:NAME`` only one in the template NAME);
- **task success**: the dialogue's goal holds at the end (the tools ran with the
  right arguments, or failed as they should; the last reply says what it must).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialoop.assistant import open_assistant
from dialoop.config import load_settings
from dialoop.dialogue.domain import Domain, Goal, Script, ScriptTurn
from dialoop.dialogue.intent import IntentClassifier
from dialoop.dialogue.state import normalize_value
from dialoop.engine import Engine
from dialoop.evidence import DialogueTrace, Step

__all__ = ["DialogueResult", "EvalReport", "Scoreboard", "run_dialogues"]


@dataclass
class DialogueResult:
    name: str
    success: bool
    failures: list[str] = field(default_factory=list)  # one line per problem, "turn 2: …"


@dataclass
class EvalReport:
    policy: str
    dialogues: list[DialogueResult]
    turns: int
    intent_accuracy: float
    slot_precision: float
    slot_recall: float
    slot_f1: float
    joint_goal_accuracy: float
    action_accuracy: float
    task_success: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy, "dialogues": len(self.dialogues), "turns": self.turns,
            "intent_accuracy": round(self.intent_accuracy, 4),
            "slot_precision": round(self.slot_precision, 4),
            "slot_recall": round(self.slot_recall, 4), "slot_f1": round(self.slot_f1, 4),
            "joint_goal_accuracy": round(self.joint_goal_accuracy, 4),
            "action_accuracy": round(self.action_accuracy, 4),
            "task_success": round(self.task_success, 4), "seconds": round(self.seconds, 1),
            "failures": {d.name: d.failures for d in self.dialogues if d.failures},
        }


@dataclass
class _Tally:
    intents: list[bool] = field(default_factory=list)
    goals: list[bool] = field(default_factory=list)
    actions: list[bool] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0


class Scoreboard:
    """Add each dialogue's turns as they run; :meth:`report` gives the metrics."""

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.results: list[DialogueResult] = []
        self._tally = _Tally()

    def add(self, script: Script, turns: Sequence[tuple[str, DialogueTrace]]) -> DialogueResult:
        """Score one dialogue from its (reply text, dialogue trace) pairs, one per turn."""
        failures: list[str] = []
        gold: dict[str, Any] = {}
        for n, (turn, (reply, trace)) in enumerate(zip(script.turns, turns, strict=True), 1):
            before = gold
            if turn.slots is not None:
                gold = {k: normalize_value(self.domain, k, v) for k, v in turn.slots.items()}
            problems = _score_turn(turn, trace, before, gold, reply, self._tally)
            failures += [f"turn {n} ({turn.user!r}): {p}" for p in problems]
        traces = [t for _, t in turns]
        last = turns[-1][0] if turns else ""
        goal = _check_goal(self.domain, script.goal, traces, last) if script.goal else []
        failures += [f"goal: {p}" for p in goal]
        # Without a goal, success is every turn acting as scripted.
        success = not goal if script.goal else not any("actions" in f for f in failures)
        result = DialogueResult(script.name, success, failures)
        self.results.append(result)
        return result

    def report(self, policy: str, seconds: float) -> EvalReport:
        t = self._tally
        precision = t.tp / (t.tp + t.fp) if t.tp + t.fp else 1.0
        recall = t.tp / (t.tp + t.fn) if t.tp + t.fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return EvalReport(
            policy=policy,
            dialogues=list(self.results),
            turns=len(t.goals),
            intent_accuracy=_mean(t.intents),
            slot_precision=precision,
            slot_recall=recall,
            slot_f1=f1,
            joint_goal_accuracy=_mean(t.goals),
            action_accuracy=_mean(t.actions),
            task_success=_mean([r.success for r in self.results]),
            seconds=seconds,
        )


def run_dialogues(
    domain: Domain,
    scripts: Sequence[Script],
    *,
    engine: Engine,
    policy: str,
    classifier: IntentClassifier | None = None,
    progress: Callable[[DialogueResult], None] | None = None,
) -> EvalReport:
    """Run each script in a fresh dialoop home (its own database and tool data) and score it.

    ``classifier``: one already trained for ``domain``, shared between runs.
    """
    start = time.perf_counter()
    board = Scoreboard(domain)
    for script in scripts:
        with tempfile.TemporaryDirectory(prefix="dialoop-eval-") as home:
            settings = load_settings(home=Path(home))
            with open_assistant(settings, engine=engine, domain=domain, policy=policy,
                                classifier=classifier) as bot:
                session = bot.session(None)
                turns = []
                for turn in script.turns:
                    reply = bot.ask(turn.user, session=session)
                    assert reply.trace.dialogue is not None
                    turns.append((reply.text, reply.trace.dialogue))
        result = board.add(script, turns)
        if progress:
            progress(result)
    return board.report(policy, time.perf_counter() - start)


def _score_turn(turn: ScriptTurn, trace: DialogueTrace, gold_before: dict[str, Any],
                gold_after: dict[str, Any], reply: str, tally: _Tally) -> list[str]:
    problems = []
    intent = trace.understood["intent"]
    if turn.intent is not None:
        tally.intents.append(intent == turn.intent)
        if intent != turn.intent:
            problems.append(f"intent {intent} (p={trace.intent['confidence']:.2f}), "
                            f"expected {turn.intent}")
    predicted_before = trace.state_before["slots"]
    predicted = trace.state_after["slots"]
    gold_changes = {(k, _key(v)) for k, v in gold_after.items() if gold_before.get(k) != v}
    predicted_changes = {(k, _key(v)) for k, v in predicted.items()
                         if predicted_before.get(k) != v}
    tally.tp += len(gold_changes & predicted_changes)
    tally.fp += len(predicted_changes - gold_changes)
    tally.fn += len(gold_changes - predicted_changes)
    same_state = {k: _key(v) for k, v in predicted.items()} == \
        {k: _key(v) for k, v in gold_after.items()}
    tally.goals.append(same_state)
    if not same_state:
        problems.append(f"state {predicted}, expected {gold_after}")
    actions = [_said(step) for step in trace.steps]
    if turn.actions:
        ok = len(actions) == len(turn.actions) and all(
            _action_matches(want, got) for want, got in zip(turn.actions, actions, strict=True))
        tally.actions.append(ok)
        if not ok:
            problems.append(f"actions {actions}, expected {turn.actions}")
    if turn.reply_contains and not _contains(reply, turn.reply_contains):
        problems.append(f"reply {reply[:120]!r} lacks any of {turn.reply_contains}")
    return problems


def _check_goal(domain: Domain, goal: Goal, traces: list[DialogueTrace],
                last_reply: str) -> list[str]:
    problems = []
    calls = [c for t in traces for c in t.tool_calls]
    for tool, wanted in goal.tools.items():
        wanted = {k: normalize_value(domain, k, v) for k, v in wanted.items()}
        if not any(c["name"] == tool and c["ok"] and all(
                _key(c["arguments"].get(k)) == _key(v) for k, v in wanted.items())
                for c in calls):
            problems.append(f"{tool} did not run with {wanted}")
    for tool in goal.tools_failed:
        if not any(c["name"] == tool and not c["ok"] for c in calls):
            problems.append(f"{tool} was expected to fail, and did not (or did not run)")
    final = traces[-1].state_after if traces else {"slots": {}, "handed_off": False}
    for slot, value in goal.slots.items():
        if _key(final["slots"].get(slot)) != _key(normalize_value(domain, slot, value)):
            problems.append(f"{slot} is {final['slots'].get(slot)!r}, expected {value!r}")
    if goal.handed_off is not None and final["handed_off"] != goal.handed_off:
        problems.append(f"handed_off is {final['handed_off']}, expected {goal.handed_off}")
    if goal.reply_contains and not _contains(last_reply, goal.reply_contains):
        problems.append(f"last reply {last_reply[:120]!r} lacks any of {goal.reply_contains}")
    return problems


def _said(step: Step) -> str:
    """A step's action; an answer in a template names it (``answer:utter_greet``), so a
    script may ask for the template (``answer`` alone matches any answer)."""
    if step.action == "answer" and (step.response or "").startswith("template:"):
        return f"answer:{step.response[9:]}"  # type: ignore[index]
    return step.action


def _action_matches(wanted: str, got: str) -> bool:
    return got == wanted or (":" not in wanted and got.partition(":")[0] == wanted)


def _contains(text: str, options: Sequence[str]) -> bool:
    return any(o.lower() in text.lower() for o in options)


def _key(value: Any) -> str:
    """Values compared as text, so that 5521 and "5521" from a script agree."""
    return str(value).strip().lower()


def _mean(values: Sequence[bool]) -> float:
    return sum(values) / len(values) if values else 1.0
