"""Rasa stories, rules and test stories as turns: what the user said, what the bot did.

A story's steps become :class:`RasaTurn` s: one user step (an intent, a text, or an
``or`` of intents) and the bot's actions after it. The bot's actions become dialoop
steps (:func:`dialoop_steps`):

- consecutive responses (``utter_…``) → one ``answer:`` with a template that says them
  in order (``answer:utter_greet+utter_help``);
- a form → ``clarify`` (the form asks for its next slot); in a test story, what Rasa
  runs after ``active_loop: null`` in the same turn cannot happen live before the user
  answered the form's questions, so it is left out and reported;
- a custom action → ``call_tool:NAME`` (the action server); dialoop acts before it
  speaks, so the turn's answer says the responses and what the action answered in
  Rasa's order (``call_tool:action_x``, ``answer:utter_a+action_x``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dialoop.interop.rasa_files import Skipped, line_of

__all__ = ["BUILTIN", "RasaTurn", "dialoop_steps", "read_steps", "template_name"]

BUILTIN = {"action_listen", "action_restart", "action_session_start", "action_default_fallback",
           "action_deactivate_loop", "action_revert_fallback_events",
           "action_default_ask_affirmation", "action_default_ask_rephrase",
           "action_two_stage_fallback", "action_back", "action_unlikely_intent",
           "action_extract_slots", "action_validate_slot_mappings"}


@dataclass
class RasaTurn:
    intents: list[str]  # several for an `or` step; empty for a rule that starts with actions
    text: str | None
    line: int
    actions: list[tuple[str, int]] = field(default_factory=list)  # ("loop:X" / "loop:" too)
    slots: dict[str, Any] = field(default_factory=dict)  # slot_was_set after the user step


def read_steps(steps: list[Any], file: str, skipped: list[Skipped]) -> list[RasaTurn]:
    turns: list[RasaTurn] = []
    for step in steps or []:
        if not isinstance(step, dict):
            continue
        line = line_of(step)
        if "intent" in step or "user" in step:
            text = step.get("user")
            turns.append(RasaTurn([str(step["intent"])] if step.get("intent") else [],
                                  str(text).strip() if text else None, line))
        elif "or" in step:
            intents = [str(o["intent"]) for o in step["or"] if isinstance(o, dict)
                       and "intent" in o]
            if len(intents) < len(step["or"]):
                skipped.append(Skipped(file, line, "an `or` of slot events: only its intents "
                                                   "are kept"))
            turns.append(RasaTurn(intents, None, line))
        elif "action" in step or "bot" in step or "active_loop" in step:
            if not turns:
                turns.append(RasaTurn([], None, line))
            if "action" in step:
                turns[-1].actions.append((str(step["action"]), line))
            elif "bot" in step:
                turns[-1].actions.append((f"bot:{str(step['bot']).strip()}", line))
            else:
                loop = step["active_loop"]
                turns[-1].actions.append((f"loop:{loop or ''}", line))
        elif "slot_was_set" in step:
            if turns:
                for item in step["slot_was_set"] or []:
                    if isinstance(item, dict):
                        turns[-1].slots.update(item)
                    else:
                        turns[-1].slots[str(item)] = True
        elif "checkpoint" in step:
            skipped.append(Skipped(file, line, f"checkpoint {step['checkpoint']!r}: stories "
                                               "are not joined at checkpoints"))
        else:
            skipped.append(Skipped(file, line, f"story step {sorted(step)} not understood"))
    return turns


def template_name(utterances: list[str]) -> str:
    return "+".join(utterances)


def dialoop_steps(turn: RasaTurn, *, forms: set[str], responses: set[str], tools: set[str],
                  file: str, skipped: list[Skipped], live: bool,
                  texts: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """The dialoop actions of a turn, and the templates (joined responses) they need.

    ``live``: a test dialogue; a form's questions are asked, so what Rasa's story runs
    after the form closed in the same turn cannot be checked and is reported. ``texts``:
    response text → response name, for bot utterances a story writes out (``bot:``).
    """
    out: list[str] = []
    templates: list[str] = []
    said: list[str] = []

    def flush() -> None:
        if said:
            name = template_name(said)
            out.append(f"answer:{name}")
            templates.append(name)
            said.clear()

    form_open = False
    for i, (action, line) in enumerate(turn.actions):
        if action.startswith("loop:"):
            if action == "loop:" and form_open and live:
                rest = [a for a, _ in turn.actions[i + 1:] if not a.startswith("loop:")]
                skipped.append(Skipped(file, line, "the test story fills the form off-screen "
                                       "(no user turns between `active_loop` and `null`); the "
                                       "live dialogue checks the form's question instead"
                                       + (f", not {', '.join(rest)}" if rest else "")))
                break
            continue
        if action.startswith("bot:"):
            name = (texts or {}).get(action[4:])
            if name is None:
                skipped.append(Skipped(file, line, f"the bot text {action[4:]!r} is no response "
                                                   "of the domain: not converted"))
            else:
                said.append(name)
        elif action in responses:
            said.append(action)
        elif action in forms:
            flush()
            out.append("clarify")
            form_open = True
        elif action in tools:  # dialoop acts first and speaks once: what the action
            out.append(f"call_tool:{action}")  # answered is said in its place
            said.append(action)
        elif action == "action_listen":
            continue
        elif action in BUILTIN or action.startswith("utter_"):
            why = "a built-in Rasa action dialoop has no counterpart for" if action in BUILTIN \
                else "a response the domain does not define"
            skipped.append(Skipped(file, line, f"action {action!r}: {why}"))
        else:
            skipped.append(Skipped(file, line, f"action {action!r} is not in the domain"))
    flush()
    return out, templates
