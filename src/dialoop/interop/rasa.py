"""``dialoop import rasa``: a Rasa 3.x project as a dialoop domain, stories and tests.

    result = import_rasa(Path("my-rasa-bot"), Path("my-rasa-bot/dialoop"))
    result.skipped   # what was not converted, each with file and line

What becomes what:

- intents and their NLU examples → ``intents`` (annotations removed; entity values,
  synonyms and lookup tables become enum values, regexes become slot patterns);
- slots and their mappings → ``slots`` (``from_entity`` → enum, pattern or number;
  ``from_text`` → text taken when asked; ``from_intent`` affirm/deny → enum values
  said with that intent's short examples); ``utter_ask_SLOT`` → the slot's question;
- responses (with variations, conditions and ``{slot}`` placeholders) → Jinja
  templates; a run of responses in one turn → one template saying them in order;
- forms → the ``requires`` of the intent that starts them; what runs after the form
  → the rule for that intent once nothing is missing;
- rules and stories → policy rules (the bot's reply to each intent) and the stories
  of the learned policy; test stories / conversations → test dialogues
  (``dialoop eval dialogue``), whose expected actions name the Rasa response
  (``answer:utter_greet``);
- custom actions → tools that call the project's action server
  (:mod:`dialoop.interop.rasa_actions`).

Whatever has no dialoop counterpart (a reply that depends on the previous action, a
checkpoint, a button, a custom slot mapping, …) is listed in ``import_report.txt``
with its file and line: nothing is dropped silently.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dialoop.errors import ConfigError
from dialoop.interop.rasa_files import Nlu, Skipped, YamlFile, line_of, read_nlu, read_yaml
from dialoop.interop.rasa_responses import PLACEHOLDER, templates
from dialoop.interop.rasa_stories import (
    RasaTurn,
    dialoop_steps,
    read_steps,
)

__all__ = ["RasaImport", "import_rasa"]

_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"


@dataclass
class RasaImport:
    out: Path
    intents: int = 0
    slots: int = 0
    templates: int = 0
    rules: int = 0
    stories: int = 0
    tests: int = 0
    tools: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def report(self) -> Path:
        return self.out / "import_report.txt"


@dataclass
class _Project:
    root: Path
    domain: dict[str, Any]
    domain_file: str
    nlu: Nlu
    stories: list[tuple[str, str, list[RasaTurn], bool]]  # (file, name, turns, is_rule)
    tests: list[tuple[str, str, list[RasaTurn]]]
    config: dict[str, Any]
    skipped: list[Skipped]

    @property
    def responses(self) -> dict[str, Any]:
        return self.domain.get("responses") or {}

    @property
    def forms(self) -> dict[str, Any]:
        return self.domain.get("forms") or {}


def import_rasa(project: Path, out: Path) -> RasaImport:
    """Convert the Rasa project in ``project`` into ``out`` (domain.yaml, stories.yaml,
    tests.yaml, actions.py when there are custom actions, import_report.txt)."""
    p = _read_project(project)
    result = RasaImport(out, skipped=p.skipped)
    intents = _intents(p)
    slots = _slots(p, intents)
    tools = _tools(p)
    result.tools = sorted(tools)
    forms = set(p.forms)
    story_scripts, replies = _stories(p, tools, intents)
    tests = _tests(p, tools, intents)
    said = {t for s in [*story_scripts, *tests] for t in _named(s)} \
        | {t for r in replies.values() for t in _named_steps(r)}
    made = templates(p.responses, said, tools, file=p.domain_file, skipped=p.skipped)
    rules = _rules(p, replies, intents, forms)
    spec: dict[str, Any] = {
        "name": re.sub(r"\W+", "_", project.resolve().name).strip("_") or "rasa_bot",
        "description": f"Imported from the Rasa project {project.resolve().name}.",
        "understanding": _understanding(p, intents),
        "intents": intents,
        "slots": slots,
        "templates": made,
        "policy": {"default": "rule", "rules": rules, "max_steps": 4},
    }
    if tools:
        spec["tools"] = {name: {"function": f"actions.py:{name}",
                                "description": f"The Rasa custom action {name}.",
                                "parameters": {"type": "object", "properties": {
                                    s: {} for s in slots}}} for name in sorted(tools)}
    if story_scripts:
        spec["policy"]["stories"] = "stories.yaml"
    out.mkdir(parents=True, exist_ok=True)
    _dump(out / "domain.yaml", spec, f"# Imported from {project} by `dialoop import rasa`.")
    if story_scripts:
        _dump(out / "stories.yaml", {"dialogues": story_scripts}, "# The Rasa stories and rules.")
    if tests:
        _dump(out / "tests.yaml", {"dialogues": tests},
              "# The Rasa test stories: dialoop eval dialogue --domain domain.yaml "
              "--tests tests.yaml")
    if tools:
        _write_actions(out, p, sorted(tools))
    result.intents, result.slots, result.templates = len(intents), len(slots), len(made)
    result.rules, result.stories, result.tests = len(rules), len(story_scripts), len(tests)
    _write_report(result, project)
    return result


# -- reading -------------------------------------------------------------------------------


def _read_project(root: Path) -> _Project:
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder: give the Rasa project's folder "
                          "(the one with domain.yml).")
    skipped: list[Skipped] = []
    domain_files = [root / "domain.yml"] if (root / "domain.yml").is_file() else \
        sorted((root / "domain").rglob("*.yml")) if (root / "domain").is_dir() else []
    if not domain_files:
        raise ConfigError(f"{root} has no domain.yml (nor a domain/ folder): is it a Rasa "
                          "project?")
    domain: dict[str, Any] = {}
    for path in domain_files:
        for key, value in read_yaml(path, root).data.items():
            if key not in domain:
                domain[key] = value
            elif isinstance(value, dict):
                domain[key].update(value)
            elif isinstance(value, list):
                domain[key].extend(value)
            else:
                domain[key] = value
    data = [read_yaml(f, root) for f in sorted((root / "data").rglob("*.y*ml"))] \
        if (root / "data").is_dir() else []
    tests = [read_yaml(f, root) for f in sorted((root / "tests").rglob("*.y*ml"))] \
        if (root / "tests").is_dir() else []
    config = read_yaml(root / "config.yml", root).data if (root / "config.yml").is_file() else {}
    stories = []
    for f in data:
        for key, is_rule in (("stories", False), ("rules", True)):
            for story in f.data.get(key) or []:
                stories.append((f.name, str(story.get(key[:-1] if is_rule else "story", "")),
                                _story_turns(story, f, skipped, is_rule), is_rule))
    test_stories = [(f.name, str(s.get("story", "")), read_steps(s.get("steps"), f.name, skipped))
                    for f in tests for s in f.data.get("stories") or []]
    return _Project(root, domain, str(domain_files[0].relative_to(root)),
                    read_nlu(data, skipped), stories, test_stories, config, skipped)


def _story_turns(story: dict[str, Any], f: YamlFile, skipped: list[Skipped],
                 is_rule: bool) -> list[RasaTurn]:
    turns = read_steps(story.get("steps"), f.name, skipped)
    for cond in story.get("condition") or []:
        if isinstance(cond, dict) and "active_loop" in cond and turns and not turns[0].intents:
            continue  # a form's submit rule: read from its active_loop steps
        skipped.append(Skipped(f.name, line_of(story), f"rule condition {dict(cond)}: dialoop "
                                                        "rules test the intent and the state"))
    if is_rule and story.get("conversation_start"):
        skipped.append(Skipped(f.name, line_of(story), "conversation_start: the rule applies "
                                                        "at any point of the conversation"))
    return turns


# -- intents and slots ---------------------------------------------------------------------


def _intent_names(p: _Project) -> list[str]:
    names = []
    for item in p.domain.get("intents") or []:
        names.append(str(next(iter(item))) if isinstance(item, dict) else str(item))
    return names


def _intents(p: _Project) -> dict[str, Any]:
    intents: dict[str, Any] = {}
    domain_line = line_of(p.domain.get("intents"))
    for name in dict.fromkeys([*_intent_names(p), *p.nlu.examples]):
        examples = p.nlu.examples.get(name, [])
        if not examples:
            p.skipped.append(Skipped(p.domain_file, domain_line,
                                     f"intent {name!r} has no NLU examples: it cannot be "
                                     "recognised from text, so it is left out"))
            continue
        intents[name] = {"description": name.replace("_", " "), "examples": examples}
    if not intents:
        raise ConfigError(f"{p.root}: no intent has NLU examples (data/nlu.yml): nothing to "
                          "recognise.")
    return intents


def _slots(p: _Project, intents: dict[str, Any]) -> dict[str, Any]:
    slots: dict[str, Any] = {}
    for name, spec in (p.domain.get("slots") or {}).items():
        if name == "requested_slot":
            continue
        slot = _slot(p, name, spec or {}, intents)
        slots[name] = slot
        for intent in _slot_intents(p, spec or {}, intents):
            uses = intents[intent].setdefault("uses", [])
            if name not in uses:
                uses.append(name)
    for form, spec in p.forms.items():
        required = [s for s in (spec or {}).get("required_slots") or [] if s in slots]
        for intent in _form_intents(p, form):
            if intent in intents:
                intents[intent]["requires"] = required
                intents[intent]["uses"] = [s for s in intents[intent].get("uses", [])
                                           if s not in required]
        for name in required:
            if "question" not in slots[name]:
                p.skipped.append(Skipped(p.domain_file, line_of(p.forms),
                                         f"form {form!r}: slot {name!r} has no utter_ask_{name} "
                                         "response (an action_ask_ is not run): dialoop asks "
                                         "a generic question"))
    return slots


def _slot(p: _Project, name: str, spec: dict[str, Any], intents: dict[str, Any]) -> dict:
    mappings = spec.get("mappings") or []
    line = line_of(spec)
    entities = [m["entity"] for m in mappings if m.get("type") == "from_entity" and "entity" in m]
    from_text = any(m.get("type") == "from_text" for m in mappings)
    from_intent = {str(m["value"]).lower(): m["intent"] for m in mappings
                   if m.get("type") == "from_intent" and "value" in m and "intent" in m}
    for m in mappings:
        kind = m.get("type")
        if kind not in ("from_entity", "from_text", "from_intent"):
            p.skipped.append(Skipped(p.domain_file, line_of(m, line),
                                     f"slot {name!r}: a {kind} mapping (set by custom code or "
                                     "the trigger intent) is not converted"))
    values: dict[str, list[str]] = {}
    for entity in entities:
        for value, phrases in p.nlu.entities.get(entity, {}).items():
            values.setdefault(value, []).extend(x for x in phrases if x != value)
    for value, intent in from_intent.items():
        for i in intent if isinstance(intent, list) else [intent]:
            short = [e for e in p.nlu.examples.get(i, []) if len(e.split()) <= 3]
            values.setdefault(value, []).extend(short)
    for value in spec.get("values") or []:  # categorical
        values.setdefault(str(value), [])
    regexes = list(dict.fromkeys([r for e in entities for r in p.nlu.regexes.get(e, [])]
                                 + p.nlu.regexes.get(name, [])))
    number = spec.get("type") == "float"
    out: dict[str, Any]
    if regexes:
        out = {"type": "number" if number else "text",
               "pattern": "|".join(f"(?:{r})" for r in regexes)}
    elif "email" in entities or "email" in name:  # Duckling's email dimension, or alike
        out = {"type": "text", "pattern": _EMAIL}
    elif number and not values:
        out = {"type": "number"}
    elif values and not from_text:
        out = {"type": "enum", "values": {v: list(dict.fromkeys(s)) for v, s in values.items()}}
    else:
        out = {"type": "text"}
        if entities and not from_text:
            p.skipped.append(Skipped(p.domain_file, line, f"slot {name!r}: entity "
                                     f"{', '.join(entities)} has no annotated values, regex or "
                                     "lookup table; the slot is filled only when asked for"))
    if out["type"] != "enum" and from_intent:
        p.skipped.append(Skipped(p.domain_file, line, f"slot {name!r}: its from_intent values "
                                 f"({', '.join(from_intent)}) are not converted (a "
                                 f"{out['type']} slot)"))
    question = _question(p, name)
    if question:
        out["question"] = question
        if PLACEHOLDER.search(question):
            p.skipped.append(Skipped(p.domain_file, line_of(p.responses.get(f"utter_ask_{name}"),
                                                            line),
                                     f"slot {name!r}: its question names slots ({question[:40]!r}…)"
                                     "; a dialoop question is fixed text, shown as written"))
    return out


def _question(p: _Project, slot: str) -> str | None:
    names = [f"utter_ask_{slot}", *(f"utter_ask_{f}_{slot}" for f in p.forms)]
    for name in names:
        variations = p.responses.get(name) or []
        if variations and isinstance(variations[0], dict) and variations[0].get("text"):
            return str(variations[0]["text"]).strip()
    return None


def _slot_intents(p: _Project, spec: dict[str, Any], intents: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for m in spec.get("mappings") or []:
        if m.get("type") != "from_entity":
            continue
        allowed = m.get("intent")
        allowed = [allowed] if isinstance(allowed, str) else allowed
        for intent in p.nlu.entity_intents.get(m.get("entity"), set()) | set(allowed or []):
            if intent in intents and intent not in found:
                found.append(intent)
    return found


def _form_intents(p: _Project, form: str) -> list[str]:
    """The intents that start ``form``: the form runs and becomes the active loop."""
    return list(dict.fromkeys(
        i for _, _, turns, _ in p.stories for t in turns
        if any(a == form and b == f"loop:{form}" for (a, _), (b, _) in
               zip(t.actions, t.actions[1:], strict=False)) for i in t.intents))


def _tools(p: _Project) -> set[str]:
    """Custom actions: those the domain lists, or stories run, that are not responses,
    forms or Rasa's own."""
    from dialoop.interop.rasa_stories import BUILTIN

    named = {str(a) for a in p.domain.get("actions") or []}
    named |= {a for _, _, turns, _ in p.stories for t in turns for a, _ in t.actions}
    named |= {a for _, _, turns in p.tests for t in turns for a, _ in t.actions}
    return {a for a in named if not a.startswith(("utter_", "loop:", "validate_", "bot:"))
            and a not in p.forms and a not in BUILTIN}


def _understanding(p: _Project, intents: dict[str, Any]) -> dict[str, Any]:
    fallback = next((c for c in p.config.get("pipeline") or []
                     if isinstance(c, dict) and c.get("name") == "FallbackClassifier"), None)
    out: dict[str, Any] = {"llm_fallback": False, "out_of_domain_similarity": -1.0,
                           "confidence_threshold": 0.0}
    if fallback is not None:
        # DIET's confidences are not calibrated like dialoop's: a lower bar stands in.
        out["confidence_threshold"] = 0.2
        p.skipped.append(Skipped("config.yml", line_of(fallback),
                                 f"FallbackClassifier threshold {fallback.get('threshold')}: "
                                 "dialoop's calibrated confidence is on another scale; "
                                 "confidence_threshold is set to 0.2"))
    if "out_of_scope" in intents:
        out["out_of_domain_intent"] = "out_of_scope"
    if p.domain.get("session_config"):
        p.skipped.append(Skipped(p.domain_file, line_of(p.domain["session_config"]),
                                 "session_config: dialoop sessions do not expire, and slots "
                                 "always carry over"))
    return out


# -- stories, rules and tests ---------------------------------------------------------------


def _steps(p: _Project, turn: RasaTurn, tools: set[str], file: str, live: bool) -> list[str]:
    texts = {str(v["text"]).strip(): name for name, variations in p.responses.items()
             for v in variations or [] if isinstance(v, dict) and v.get("text")}
    steps, _ = dialoop_steps(turn, forms=set(p.forms), responses=set(p.responses),
                             tools=tools, file=file, skipped=p.skipped, live=live, texts=texts)
    return steps


def _stories(p: _Project, tools: set[str], intents: dict[str, Any]
             ) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The stories as dialoop stories, and the reply chosen for each intent (its steps)."""
    seen: dict[str, Counter[tuple[str, ...]]] = {}
    where: dict[tuple[str, tuple[str, ...]], tuple[str, int]] = {}
    scripts = []
    unlabelled: list[tuple[str, tuple[str, ...], str, int]] = []
    for file, name, turns, is_rule in p.stories:
        script_turns = []
        for turn in turns:
            steps = _steps(p, turn, tools, file, live=False)
            form = next((a for a, _ in turn.actions if a in p.forms), None)
            if form and turn.intents and "clarify" in steps[:-1]:
                # The form ran to its end in this turn: what follows is its submit.
                after = steps[steps.index("clarify") + 1:]
                seen.setdefault(f"form:{form}", Counter())[tuple(after)] += 1
                where.setdefault((f"form:{form}", tuple(after)), (file, turn.line))
                steps = steps[:steps.index("clarify") + 1]
            if turn.intents:
                steps = _first_reply(steps)
            elif steps[:1] == ["clarify"]:  # a submit rule: the form's last run, then …
                steps = steps[1:]
            keys = turn.intents or ([f"form:{form}"] if form and turn.actions[0][0] == form
                                    else [])
            if not turn.intents and turn.text and steps:
                unlabelled.append((turn.text, tuple(steps), file, turn.line))
            for intent in keys:
                weight = 100 if is_rule else 1  # a rule always wins over a story
                seen.setdefault(intent, Counter())[tuple(steps)] += weight
                where.setdefault((intent, tuple(steps)), (file, turn.line))
            intent = turn.intents[0] if turn.intents else None
            if intent in intents:
                text = turn.text or intents[intent]["examples"][0]
                script_turns.append({"user": text, "intent": intent,
                                     "actions": _first_reply(steps)})
        if script_turns:
            scripts.append({"name": name or f"story at {file}", "turns": script_turns})
    replies = {}
    for intent, counts in seen.items():
        (best, _), *others = counts.most_common()
        replies[intent] = list(best)
        for steps, _ in others:
            file, line = where[(intent, steps)]
            p.skipped.append(Skipped(file, line, f"after {intent or 'a form'!r} the bot replies "
                                     f"{list(steps)} here but {list(best)} elsewhere: dialoop "
                                     "rules cannot test the previous action, so the most "
                                     "frequent reply is kept"))
    for text, steps, file, line in unlabelled:  # an end-to-end story step: text, no intent
        same = [i for i, r in replies.items() if tuple(r) == steps and i in intents]
        if len(same) == 1:
            intents[same[0]]["examples"].append(text)
        else:
            p.skipped.append(Skipped(file, line, f"the story's text {text!r} has no intent, and "
                                     f"the reply after it follows {len(same)} intents: not "
                                     "learned"))
    return scripts, replies


def _first_reply(steps: list[str]) -> list[str]:
    """The steps of a live turn: up to the first that ends it (answer, clarify)."""
    out = []
    for step in steps:
        out.append(step)
        if step.partition(":")[0] in ("answer", "clarify", "hand_off"):
            break
    return out or ["answer"]


def _tests(p: _Project, tools: set[str], intents: dict[str, Any]) -> list[dict[str, Any]]:
    scripts = []
    slots = {k: v or {} for k, v in (p.domain.get("slots") or {}).items()}
    by_entity: dict[str, list[str]] = {}
    for slot, spec in slots.items():
        for m in spec.get("mappings") or []:
            if m.get("type") == "from_entity" and m.get("entity"):
                by_entity.setdefault(m["entity"], []).append(slot)
    for file, name, turns in p.tests:
        script_turns: list[dict[str, Any]] = []
        gold: dict[str, Any] = {}
        active: str | None = None  # the form open before this turn
        for turn in turns:
            intent = turn.intents[0] if turn.intents else None
            text = turn.text
            if text is None and intent in intents:
                text = intents[intent]["examples"][0]
                p.skipped.append(Skipped(file, turn.line, f"a test step with intent {intent!r} "
                                         f"and no text: its first NLU example {text!r} is sent"))
            if text is None:
                if turn.intents or not script_turns:
                    rest = "the story ends here" if script_turns else "the story is left out"
                    p.skipped.append(Skipped(file, turn.line, f"test story {name!r}: a step "
                                             f"without text whose intent has no examples; {rest}"))
                    break
                continue
            from dialoop.interop.rasa_files import parse_example

            plain, found = parse_example(text)
            item: dict[str, Any] = {"user": plain}
            names = [a for a, _ in turn.actions]
            if active and names[:1] == [active] and intent not in _form_intents(p, active):
                # The message answers the open form: in dialoop it serves the form's intent.
                intent = next(iter(_form_intents(p, active)), intent)
            for a, b in zip(names, [*names[1:], None][:len(names)], strict=True):
                if a in p.forms:
                    active = a if b == f"loop:{a}" else active
                elif a == "loop:":
                    active = None
            if intent in intents:
                item["intent"] = intent
            before = dict(gold)
            for entity, value, _ in found:  # the slots an annotated value fills
                gold.update({s: value for s in by_entity.get(entity, [])})
            gold.update({k: v for k, v in turn.slots.items() if k in slots})
            if gold != before:
                item["slots"] = dict(gold)
            steps = _steps(p, turn, tools, file, live=True)
            if steps:
                item["actions"] = steps
            script_turns.append(item)
            if _fills_off_screen(p, turn) and turn is not turns[-1]:
                p.skipped.append(Skipped(file, turn.line, f"test story {name!r}: the turns after "
                                         "the form filled off-screen are left out (Rasa has "
                                         "closed the form there; the live dialogue is still "
                                         "asking its questions)"))
                break
        if script_turns:
            scripts.append({"name": name or f"test at {file}", "turns": script_turns})
    return scripts


def _fills_off_screen(p: _Project, turn: RasaTurn) -> bool:
    """The turn runs a form and closes it before the user says anything more."""
    names = [a for a, _ in turn.actions]
    opened = next((i for i, a in enumerate(names) if a in p.forms), None)
    return opened is not None and "loop:" in names[opened + 1:]


def _rules(p: _Project, replies: dict[str, list[str]], intents: dict[str, Any],
           forms: set[str]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {"why": "the action server failed: say so", "when": {"tool_failed": True},
         "action": "answer"}]
    after_tool: dict[str, str] = {}
    for steps in replies.values():
        for a, b in zip(steps, steps[1:], strict=False):
            if a.startswith("call_tool:") and b.startswith("answer:"):
                after_tool.setdefault(a[10:], b[7:])
    for tool, template in sorted(after_tool.items()):
        rules.append({"why": f"what the bot says after {tool}",
                      "when": {"acted": f"call_tool {tool}"}, "action": "answer",
                      "respond": template})
    rules.append({"why": "a custom action ran: say what it answered", "when": {"acted": True},
                  "action": "answer"})
    fallback = replies.get("nlu_fallback")
    if fallback and fallback[0].startswith("answer:"):
        rules.append({"why": "the NLU is unsure (Rasa's nlu_fallback)",
                      "when": {"confident": False}, "action": "answer",
                      "respond": fallback[0][7:]})
    form_intents = [i for i, spec in intents.items() if spec.get("requires")]
    if form_intents:
        rules.append({"why": "a form is open and a slot is missing: ask for it",
                      "when": {"intent": form_intents, "missing": True}, "action": "clarify"})
    for intent in intents:
        steps = [s for s in replies.get(intent, []) if s != "clarify"]
        form = next((f for f in forms if intent in _form_intents(p, f)), None)
        if form and not steps:  # what runs once the form is complete (its submit rule)
            steps = [s for s in replies.get(f"form:{form}", []) if s != "clarify"]
        if not steps:
            continue
        first = steps[0]
        rule: dict[str, Any] = {"why": f"the Rasa reply to {intent}", "when": {"intent": intent}}
        if first.startswith("answer:"):
            rule.update(action="answer", respond=first[7:])
        elif first.startswith("call_tool:"):
            rule.update(action=f"call_tool {first[10:]}")
        else:
            continue
        rules.append(rule)
    rules.append({"why": "no Rasa rule or story covers this", "when": {}, "action": "answer"})
    return rules


# -- the templates the steps name -------------------------------------------------------------


def _named(script: dict[str, Any]) -> set[str]:
    return {t for turn in script["turns"] for t in _named_steps(turn.get("actions", []))}


def _named_steps(steps: list[str]) -> set[str]:
    return {s[7:] for s in steps if s.startswith("answer:")}


# -- writing ---------------------------------------------------------------------------------


def _dump(path: Path, data: Any, header: str) -> None:
    text = yaml.safe_dump(_plain(data), sort_keys=False, allow_unicode=True, width=100)
    path.write_text(f"{header}\n{text}", encoding="utf-8")


def _plain(data: Any) -> Any:
    """Our line-remembering dicts and lists as plain ones (safe_dump knows only those)."""
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    return data


def _write_actions(out: Path, p: _Project, tools: list[str]) -> None:
    endpoints = p.root / "endpoints.yml"
    url = "http://localhost:5055/webhook"
    if endpoints.is_file():
        action = read_yaml(endpoints, p.root).data.get("action_endpoint") or {}
        url = str(action.get("url") or url)
    (out / "rasa_domain.json").write_text(
        json.dumps(_plain(p.domain), indent=1, ensure_ascii=False, default=str),
        encoding="utf-8")
    lines = ['"""The Rasa custom actions of this domain: each calls the action server."""',
             "", "import os", "from pathlib import Path", "",
             "from dialoop.interop.rasa_actions import ActionServer", "",
             f"server = ActionServer(os.environ.get('RASA_ACTION_ENDPOINT', {url!r}),",
             "                      Path(__file__).with_name('rasa_domain.json'))", ""]
    lines += [f"{name} = server.action({name!r})" for name in tools]
    (out / "actions.py").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_report(result: RasaImport, project: Path) -> None:
    lines = [f"dialoop import rasa {project}",
             f"{result.intents} intents, {result.slots} slots, {result.templates} templates, "
             f"{result.rules} policy rules, {result.stories} stories, {result.tests} test "
             f"dialogues, {len(result.tools)} custom actions as tools",
             "", f"Not converted, or only approximately ({len(result.skipped)}):"]
    seen = set()
    for item in result.skipped:
        if str(item) not in seen:
            seen.add(str(item))
            lines.append(f"  {item}")
    result.report.write_text("\n".join(lines) + "\n", encoding="utf-8")
