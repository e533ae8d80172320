"""A domain, described in one YAML file: intents, slots, tools, templates, policy.

    name: store_support
    system_prompt: You are the support assistant of Nimbus Home.
    intents:
      order_status:
        examples: [Where is my order?, Has my parcel shipped yet?]
        requires: [order_number]
    slots:
      order_number: {type: number, pattern: '\\b\\d{4,6}\\b', question: What is your order number?}
    tools:
      lookup_order:
        function: tools.py:lookup_order          # or package.module:function
        parameters: {type: object, properties: {order_number: {type: integer}}}
    templates:
      lookup_order: "Order {{ result.order_number }} is {{ result.status }}."
    policy:
      rules:
        - {when: {intent: order_status, missing: false}, action: call_tool lookup_order}
        - {when: {}, action: answer}

An optional ``reward`` section (:class:`RewardSpec`) says what a dialogue is worth to
the policy learners and to ``dialoop simulate``.

Loading validates the structure (pydantic) and the cross references (a rule naming
an intent that does not exist, a template that does not compile, …); any problem
is a :class:`DomainError` naming the file, the line and the problem.

Without a domain file, dialoop uses :func:`general_domain`: one intent, no slots,
and one rule (answer), which is the plain chat of a general assistant.

Scripted dialogues (the training stories of the learned policy, and the test
dialogues of ``dialoop eval dialogue``) share one format, :class:`Script`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.sandbox
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dialoop.agent.tools import Tool, ToolRegistry, load_callable
from dialoop.errors import ConfigError, DomainError

__all__ = [
    "ACTION_KINDS",
    "Domain",
    "DomainError",
    "DomainSpec",
    "RewardSpec",
    "Script",
    "ScriptTurn",
    "SlotSpec",
    "general_domain",
    "load_domain",
    "load_scripts",
]

ACTION_KINDS = ("answer", "clarify", "look_up", "call_tool", "hand_off")
_ACTION = re.compile(r"^(answer|clarify|look_up|hand_off|call_tool[ :]+(?P<tool>\w+))$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlotSpec(_Strict):
    """A piece of information the assistant collects from the user."""

    type: Literal["text", "number", "enum", "date", "entity"]
    question: str | None = None
    """What the assistant asks when the slot is missing."""
    pattern: str | None = None
    """A regular expression a value must match (text, number)."""
    values: dict[str, list[str]] | list[str] | None = None
    """enum: the values, each with optional synonyms."""
    entity: str | None = None
    """entity: the knowledge type whose names are the values ("product")."""
    label: str | None = None
    """How the slot is named to the user (default: its name, with spaces)."""
    cues: list[str] = Field(default_factory=list)
    """Words that point at this slot ("part of town" for an area), for the values
    tracker (``understanding.tracker``); its name, label and question count too."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return v


class IntentSpec(_Strict):
    description: str = ""
    examples: list[str] = Field(default_factory=list)
    requires: list[str] = Field(default_factory=list)
    """Slots the intent cannot be served without: the assistant asks for them."""
    uses: list[str] = Field(default_factory=list)
    """Slots the intent can use when given."""
    confirm: bool = False
    """Read the required values back and wait for a yes before acting."""


class ToolSpec(_Strict):
    function: str
    """``package.module:function`` or ``file.py:function`` (relative to the domain file)."""
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    """JSON schema of the arguments."""
    arguments: dict[str, str] = Field(default_factory=dict)
    """parameter name → slot name, where they differ (default: the same name)."""


class Condition(_Strict):
    """When a rule applies: every field given must hold (an empty condition always holds)."""

    intent: str | list[str] | None = None
    confident: bool | None = None
    out_of_domain: bool | None = None
    missing: bool | str | None = None
    """true: some required slot is missing; a slot name: that slot is missing."""
    needs_confirmation: bool | None = None
    denied: bool | None = None
    acted: bool | str | None = None
    """true: a look-up or tool ran in this turn; "look_up", "call_tool" or "call_tool NAME"."""
    tool_failed: bool | None = None
    evidence_found: bool | None = None
    handed_off: bool | None = None


class Rule(_Strict):
    when: Condition = Field(default_factory=Condition)
    action: str
    respond: str | None = None
    """The template to answer with (default: the tool's, else the intent's, else generate)."""
    why: str | None = None

    @field_validator("action")
    @classmethod
    def _known_action(cls, v: str) -> str:
        m = _ACTION.match(v.strip())
        if not m:
            raise ValueError(
                f"unknown action {v!r}: use answer, clarify, look_up, hand_off or call_tool NAME"
            )
        return f"call_tool:{m['tool']}" if m["tool"] else v.strip()


class UnderstandingSpec(_Strict):
    confidence_threshold: float = Field(0.5, ge=0, le=1)
    """Below this calibrated probability the intent is not trusted: LLM fallback, then clarify."""
    out_of_domain_intent: str | None = None
    """The intent that stands for 'not something this assistant does'."""
    out_of_domain_similarity: float = Field(0.3, ge=-1, le=1)
    """A message whose nearest example is less similar than this is out of the domain."""
    llm_fallback: bool = True
    """Ask the model to choose among the top intents when the classifier is unsure."""
    classifier: str | None = None
    """A folder written by ``dialoop train classifier`` (relative to the domain file)
    whose labels are the intents: a fine-tuned encoder recognises them instead of the
    embedding classifier trained on the examples."""
    tracker: Literal["rules", "values", "both"] = "rules"
    """Who fills the enum and entity slots each turn: ``rules`` (each slot's values looked
    for on their own), ``values`` (the schema-driven tracker of ``dialogue/tracker.py``:
    cue words, the question just asked, "doesn't matter", "not X") or ``both`` (the
    tracker first, the rules for what it left empty). Other slot types always use the
    rules."""
    tracker_gate: str | None = None
    """A file written by ``dialoop train tracker-gate`` (relative to the domain file): with
    ``tracker: values`` or ``both``, a learned gate decides which of the tracker's proposals
    and guesses (a name the assistant offered without a clear "yes") to keep."""


class PolicySpec(_Strict):
    rules: list[Rule] = Field(default_factory=lambda: [Rule(action="answer")])
    default: Literal["rule", "learned"] = "rule"
    stories: str | None = None
    """Example dialogues (file, relative to the domain file) the learned policy is trained on."""
    backoff: float = Field(0.6, ge=0, le=1)
    """The learned policy defers to the rules when its probability is below this."""
    max_steps: int = Field(4, ge=1, le=20)
    """Actions per turn at most (a look-up or tool call is followed by another action)."""
    online: bool = True
    """Whether this domain's policy may learn from live users when an admin turns on
    ``policy_online``. A production domain whose behaviour must not drift sets it to
    ``false``; the setting then leaves it alone (and says so in the log)."""


class RewardSpec(_Strict):
    """What a dialogue is worth, for learning and comparing policies (``dialoop simulate``).

    A dialogue's reward is the sum of: ``success`` if the user's goal was reached, else
    ``failure``; ``turn`` for every user turn; ``hand_off`` if it was handed to a person
    (a person's time costs, even when the user asked for one); ``rating`` times the user's
    rating (-1 to 1) when there is one.
    """

    success: float = 20.0
    failure: float = -10.0
    turn: float = -1.0
    hand_off: float = -5.0
    rating: float = 5.0

    @field_validator("success", "rating")
    @classmethod
    def _not_negative(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"must be 0 or more (it is {v}): it rewards what the user wants")
        return v

    @field_validator("failure", "turn", "hand_off")
    @classmethod
    def _not_positive(cls, v: float) -> float:
        if v > 0:
            raise ValueError(f"must be 0 or less (it is {v}): it is a cost, and a positive "
                             "one would pay a policy to fail or to drag the dialogue on")
        return v


class DomainSpec(_Strict):
    name: str
    description: str = ""
    system_prompt: str | None = None
    understanding: UnderstandingSpec = Field(default_factory=UnderstandingSpec)
    intents: dict[str, IntentSpec] = Field(min_length=1)
    slots: dict[str, SlotSpec] = Field(default_factory=dict)
    tools: dict[str, ToolSpec] = Field(default_factory=dict)
    templates: dict[str, str] = Field(default_factory=dict)
    knowledge: str | None = None
    """A facts file (relative to the domain file) for the look_up action."""
    policy: PolicySpec = Field(default_factory=PolicySpec)
    reward: RewardSpec = Field(default_factory=RewardSpec)


class ScriptTurn(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    user: str
    intent: str | None = None
    slots: dict[str, Any] | None = None
    """The whole dialogue state after this turn (default: unchanged from the turn before)."""
    actions: list[str] = Field(default_factory=list)
    """The actions of this turn, in order: "clarify", "clarify:order_number", "call_tool:X", …"""
    reply_contains: list[str] = Field(default_factory=list)
    """Words the reply must contain (any one of them, case-insensitive)."""
    tool_fails: bool = False
    """(stories) the tool called in this turn failed."""


class Goal(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    tools: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Tools that must have run successfully, with (some of) their arguments."""
    tools_failed: list[str] = Field(default_factory=list)
    """Tools that must have been called and failed (and the user told so)."""
    slots: dict[str, Any] = Field(default_factory=dict)
    handed_off: bool | None = None
    reply_contains: list[str] = Field(default_factory=list)
    """Words the last reply must contain (any one of them)."""


class Script(_Strict):
    name: str
    turns: list[ScriptTurn] = Field(min_length=1)
    goal: Goal | None = None


class _ScriptFile(_Strict):
    dialogues: list[Script] = Field(min_length=1)


@dataclass
class Domain:
    """A loaded domain: its validated spec, its tools and compiled templates."""

    spec: DomainSpec
    path: Path | None = None
    tools: ToolRegistry = field(default_factory=ToolRegistry)
    stories: list[Script] = field(default_factory=list)
    _templates: dict[str, jinja2.Template] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def folder(self) -> Path | None:
        return self.path.parent if self.path else None

    @property
    def is_general(self) -> bool:
        """One intent and no slots: nothing to understand, every turn is answered."""
        return len(self.spec.intents) == 1 and not self.spec.slots

    def has_template(self, name: str) -> bool:
        return name in self._templates

    def render(self, name: str, **context: Any) -> str:
        """Render the template ``name``; raises jinja2.TemplateError on a missing value."""
        return self._templates[name].render(**context).strip()

    def slot_label(self, slot: str) -> str:
        spec = self.spec.slots[slot]
        return spec.label or slot.replace("_", " ")

    def slot_question(self, slot: str) -> str:
        """What the assistant asks to fill ``slot``: its ``question``, else one made of its
        label."""
        return self.spec.slots[slot].question or f"What is the {self.slot_label(slot)}?"

    def required(self, intent: str | None) -> list[str]:
        return list(self.spec.intents[intent].requires) if intent in self.spec.intents else []

    def intent_slots(self, intent: str | None) -> list[str]:
        if intent not in self.spec.intents:
            return []
        spec = self.spec.intents[intent]
        return list(dict.fromkeys([*spec.requires, *spec.uses]))

    def resolve(self, relative: str) -> Path:
        return (self.folder / relative) if self.folder else Path(relative)


def general_domain(system_prompt: str | None = None) -> Domain:
    """The built-in domain of a general assistant: every message is answered by the model."""
    spec = DomainSpec(
        name="general",
        description="A general assistant.",
        system_prompt=system_prompt,
        intents={"chat": IntentSpec(description="anything")},
        understanding=UnderstandingSpec(llm_fallback=False),
    )
    return Domain(spec)


def load_domain(path: str | Path) -> Domain:
    """Load and check a domain file; every problem names the file and line."""
    path = Path(path)
    data, lines = _read_yaml(path)
    try:
        spec = DomainSpec.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(path, exc, lines) from None
    problems = _cross_check(spec)
    if problems:
        where, message = problems[0]
        raise DomainError(f"{path}:{_line(lines, where)}: {_dotted(where)}: {message}")
    domain = Domain(spec, path)
    env = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined,
                                              autoescape=False, keep_trailing_newline=False)
    for name, text in spec.templates.items():
        try:
            domain._templates[name] = env.from_string(text)
        except jinja2.TemplateSyntaxError as exc:
            where = ("templates", name)
            raise DomainError(
                f"{path}:{_line(lines, where)}: template {name!r}: {exc.message}"
            ) from None
    for name, tool in spec.tools.items():
        where = ("tools", name, "function")
        try:
            function = load_callable(tool.function, base=path.parent)
            domain.tools.add(Tool(name, function, tool.parameters, tool.description))
        except ConfigError as exc:
            raise DomainError(f"{path}:{_line(lines, where)}: tool {name!r}: {exc}") from None
    if spec.policy.stories:
        domain.stories = load_scripts(domain.resolve(spec.policy.stories), domain)
    return domain


def load_scripts(path: str | Path, domain: Domain) -> list[Script]:
    """Scripted dialogues (stories or tests), checked against ``domain``."""
    path = Path(path)
    data, lines = _read_yaml(path)
    try:
        scripts = _ScriptFile.model_validate(data).dialogues
    except ValidationError as exc:
        raise _validation_error(path, exc, lines) from None
    for i, script in enumerate(scripts):
        for j, turn in enumerate(script.turns):
            where: tuple[str | int, ...] = ("dialogues", i, "turns", j)
            problem = _check_turn(turn, domain)
            if problem:
                raise DomainError(f"{path}:{_line(lines, where)}: dialogue {script.name!r}, "
                                  f"turn {j + 1}: {problem}")
    return scripts


# -- checks -------------------------------------------------------------------------------


def _cross_check(spec: DomainSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """References between sections that pydantic cannot see, with where each problem is."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name, intent in spec.intents.items():
        for key in ("requires", "uses"):
            for i, slot in enumerate(getattr(intent, key)):
                if slot not in spec.slots:
                    problems.append((("intents", name, key, i), f"no slot named {slot!r}"))
        if not intent.examples and len(spec.intents) > 1:
            problems.append((("intents", name), "an intent needs examples to be recognised"))
    for name, slot in spec.slots.items():
        if slot.type == "enum" and not slot.values:
            problems.append((("slots", name), "an enum slot needs 'values'"))
        if slot.type == "entity" and not slot.entity:
            problems.append((("slots", name), "an entity slot needs 'entity' (a knowledge type)"))
    ood = spec.understanding.out_of_domain_intent
    if ood and ood not in spec.intents:
        problems.append((("understanding", "out_of_domain_intent"), f"no intent named {ood!r}"))
    for name, tool in spec.tools.items():
        for param, slot in tool.arguments.items():
            if slot not in spec.slots:
                problems.append((("tools", name, "arguments", param), f"no slot named {slot!r}"))
    for i, rule in enumerate(spec.policy.rules):
        where = ("policy", "rules", i)
        intents = rule.when.intent
        for intent in [intents] if isinstance(intents, str) else intents or []:
            if intent not in spec.intents:
                problems.append(((*where, "when", "intent"), f"no intent named {intent!r}"))
        if isinstance(rule.when.missing, str) and rule.when.missing not in spec.slots:
            problems.append(((*where, "when", "missing"), f"no slot named {rule.when.missing!r}"))
        if rule.action.startswith("call_tool:") and rule.action[10:] not in spec.tools:
            problems.append(((*where, "action"), f"no tool named {rule.action[10:]!r}"))
        if rule.respond and rule.respond not in spec.templates:
            problems.append(((*where, "respond"), f"no template named {rule.respond!r}"))
    return problems


def _check_turn(turn: ScriptTurn, domain: Domain) -> str | None:
    spec = domain.spec
    if turn.intent is not None and turn.intent not in spec.intents:
        return f"no intent named {turn.intent!r}"
    for slot in turn.slots or {}:
        if slot not in spec.slots:
            return f"no slot named {slot!r}"
    for action in turn.actions:
        kind, _, target = action.partition(":")
        if kind not in ACTION_KINDS:
            return f"unknown action {action!r}"
        if kind == "call_tool" and target not in spec.tools:
            return f"no tool named {target!r}"
    return None


# -- YAML with line numbers -------------------------------------------------------------------


def _read_yaml(path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """The file's data, and the line (1-based) where each key or item starts."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DomainError(f"{path}: no such file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DomainError(f"{path}: cannot read it ({exc}).") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise DomainError(f"{path}{line}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise DomainError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise DomainError(f"{path}:1: the file must be a mapping (key: value lines).")
    lines: dict[tuple[str | int, ...], int] = {}
    _walk(node, (), lines)
    return data, lines


def _walk(node: yaml.Node | None, path: tuple[str | int, ...],
          lines: dict[tuple[str | int, ...], int]) -> None:
    if node is None:
        return
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            lines[sub] = key.start_mark.line + 1
            _walk(value, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines)


def _line(lines: Mapping[tuple[str | int, ...], int], where: Sequence[str | int]) -> int:
    """The line of ``where``, or of its nearest ancestor that is in the file."""
    where = tuple(where)
    while where and where not in lines:
        where = where[:-1]
    return lines.get(where, 1)


def _dotted(where: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in where)


def _validation_error(path: Path, exc: ValidationError,
                      lines: Mapping[tuple[str | int, ...], int]) -> DomainError:
    err = exc.errors()[0]
    # pydantic adds the union member's type name to the location ("str", "list[str]"…)
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p[:1].islower()
                                               and ("[" in p or p in _TYPE_NAMES)))
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
    more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
    return DomainError(f"{path}:{_line(lines, loc)}: {_dotted(loc) or 'file'}: {message}{more}")


_TYPE_NAMES = {"str", "int", "float", "bool", "dict", "list", "none", "literal"}
