"""Dialogue state and slot filling: what the user wants and what they have told us so far.

The state after each answer is stored with that assistant turn, in a column of its own
(``Turn.state``, JSON with a ``version``), so it survives restarts and any turn can show
what was known when it was answered. A change to its shape bumps :data:`STATE_VERSION`
and teaches :meth:`DialogueState.from_dict` to read the older one.

Slot values are found by type:

- ``number``: digits (matching the slot's ``pattern`` if it has one); stored as int.
- ``enum``: a value or one of its synonyms, as a whole word or phrase.
- ``entity``: a name (or alias) of the slot's knowledge type, from the lookup.
- ``date``: an ISO date, "today"/"tomorrow"/"yesterday", or anything dateutil reads
  (only when the message mentions a date-looking word, to avoid guessing).
- ``text``: the slot's ``pattern``; or, when the assistant has just asked for this
  slot, the whole message.

Corrections: a value right after "not", "instead of" or "rather than", or right before
"is wrong", is a value the user is taking back, never the new value; so "no, order
5521, not 5512" sets 5521. A new value always replaces the old one, and the trace says so.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dialoop.dialogue.domain import Domain, SlotSpec

__all__ = [
    "STATE_VERSION",
    "SWITCH_CONFIDENCE",
    "DialogueState",
    "SlotUpdate",
    "Understanding",
    "advance",
    "affirms",
    "denies",
    "extract_slots",
    "normalize_value",
]

_NEGATED_BEFORE = re.compile(r"(?:\bnot|\binstead of|\brather than|\bisn'?t|\bwasn'?t)\s*"
                             r"(?:the\s+|order\s+|number\s+|#\s*)*$", re.I)
_NEGATED_AFTER = re.compile(r"^\s*(?:is|was)\s+(?:wrong|incorrect|a typo|not right)", re.I)
_AFFIRM = re.compile(r"^\s*(yes|yeah|yep|yup|sure|correct|right|ok(ay)?|please do|go ahead|"
                     r"do it|confirm(ed)?|that'?s (right|correct)|y)\b", re.I)
_DENY = re.compile(r"^\s*(no|nope|nah|wrong|incorrect|cancel|don'?t|stop|wait|not)\b", re.I)
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
# A month name only counts next to a day number: "may I return it?" names no date.
_DATE_WORDS = re.compile(rf"\b(today|tomorrow|yesterday|\d{{4}}-\d{{2}}-\d{{2}}|"
                         rf"\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?|{_MONTH}\s+\d{{1,2}}\b|"
                         rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH})", re.I)
_EMAIL_LIKE = re.compile(r"\S+@\S+")

STATE_VERSION = 1
"""The shape of a stored state (``DialogueState.to_dict``); states without one are 1."""

SWITCH_CONFIDENCE = 0.75
"""A message that answers the assistant's question continues the current goal unless the
classifier is at least this sure that the user has moved on to another task."""


@dataclass
class DialogueState:
    """What is known at the end of a turn. JSON-able through :meth:`to_dict`."""

    intent: str | None = None  # the user's current goal (the active intent)
    slots: dict[str, Any] = field(default_factory=dict)
    requested: str | None = None  # the slot the assistant asked for in its last turn
    confirming: dict[str, Any] | None = None  # values read back, awaiting yes/no
    confirmed: dict[str, Any] | None = None  # values the user said yes to
    handed_off: bool = False
    turns: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "intent": self.intent, "slots": dict(self.slots),
                "requested": self.requested, "confirming": self.confirming,
                "confirmed": self.confirmed, "handed_off": self.handed_off, "turns": self.turns}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DialogueState:
        if not data:
            return cls()
        if int(data.get("version", 1)) > STATE_VERSION:
            raise ValueError(f"a dialogue state of version {data['version']} is newer than "
                             f"this dialoop ({STATE_VERSION}): upgrade dialoop")
        return cls(intent=data.get("intent"), slots=dict(data.get("slots") or {}),
                   requested=data.get("requested"), confirming=data.get("confirming"),
                   confirmed=data.get("confirmed"), handed_off=bool(data.get("handed_off")),
                   turns=int(data.get("turns") or 0))

    def copy(self) -> DialogueState:
        return DialogueState.from_dict(self.to_dict())

    def missing(self, domain: Domain, intent: str | None = None) -> list[str]:
        """Required slots of ``intent`` (default: the active one) that have no value."""
        return [s for s in domain.required(intent or self.intent) if s not in self.slots]

    def needs_confirmation(self, domain: Domain) -> bool:
        """The active intent asks for a yes before acting, and these values have none."""
        if self.intent not in domain.spec.intents or not domain.spec.intents[self.intent].confirm:
            return False
        return self.confirmed != self.confirmation_values(domain)

    def confirmation_values(self, domain: Domain) -> dict[str, Any]:
        return {s: self.slots.get(s) for s in domain.required(self.intent)}

    def summary(self, domain: Domain) -> str:
        """One line for the system prompt: what the user has told us."""
        if not self.slots:
            return ""
        known = ", ".join(f"{domain.slot_label(k)}: {'no preference' if v == 'dontcare' else v}"
                          for k, v in self.slots.items() if k in domain.spec.slots)
        return f"Known from the customer so far: {known}." if known else ""


@dataclass(frozen=True)
class SlotUpdate:
    """A value found in a message; ``old`` is set when it replaces an earlier value."""

    slot: str
    value: Any
    old: Any = None

    def to_dict(self) -> dict[str, Any]:
        out = {"slot": self.slot, "value": self.value}
        if self.old is not None:
            out["replaces"] = self.old
        return out


@dataclass
class Understanding:
    """What one message changed: the turn's intent, the slot updates, yes/no, the new state."""

    intent: str | None  # the intent this turn serves (the active one if continued)
    confident: bool
    out_of_domain: bool
    continued: bool  # the message answered the assistant's question in the current goal
    affirmed: bool
    denied: bool
    updates: list[SlotUpdate]
    state: DialogueState  # after understanding, before acting

    def to_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "confident": self.confident,
                "out_of_domain": self.out_of_domain, "continued": self.continued,
                "affirmed": self.affirmed, "denied": self.denied,
                "slot_updates": [u.to_dict() for u in self.updates]}


def advance(
    before: DialogueState,
    domain: Domain,
    message: str,
    *,
    intent: str | None,
    confidence: float,
    out_of_domain: bool,
    found: Mapping[str, Any],
) -> Understanding:
    """The state after the user said ``message`` (classified as ``intent``, with ``found``
    slot values); the acting step may still change ``requested`` and ``confirming``."""
    state = before.copy()
    state.turns += 1
    state.requested = state.confirming = None
    confident = confidence >= domain.spec.understanding.confidence_threshold
    affirmed = denied = False
    if before.confirming is not None:
        affirmed, denied = affirms(message), denies(message)
    # Does the message carry on the current goal? A yes/no to our read-back does; so does
    # an answer to our question, unless the classifier is very sure the user moved on; so
    # does a value for the goal ("no, order 5521"), unless the classifier is sure of another
    # intent ("I want to return order 5512" after an order-status answer).
    other = intent != before.intent and not out_of_domain
    answers = before.requested in found or bool(before.confirming and any(
        s in before.confirming for s in found))  # a correction of a value we read back
    informs = any(s in domain.intent_slots(before.intent) for s in found)
    # An intent that only gives values ("inform" in Rasa: it requires nothing, and uses the
    # slot we asked for) answers our question however sure the classifier is of it.
    gives = other and intent in domain.spec.intents and not domain.required(intent) \
        and before.requested in domain.intent_slots(intent)
    continued = bool(before.intent) and not before.handed_off and (
        affirmed or denied
        or (answers and (gives or not (other and confidence >= SWITCH_CONFIDENCE)))
        or (informs and not (other and confident)))
    if continued:
        intent, confident, out_of_domain = before.intent, True, False
    elif confident and intent != before.intent:
        state.intent, state.confirmed = intent, None  # a new goal; the slots carry over
    updates = []
    for slot, value in found.items():
        if state.slots.get(slot) != value:
            updates.append(SlotUpdate(slot, value, state.slots.get(slot)))
            state.slots[slot] = value
    if affirmed:
        state.confirmed = before.confirming
    elif denied:
        state.confirmed = None
    return Understanding(intent, confident, out_of_domain, continued, affirmed, denied,
                         updates, state)


def affirms(message: str) -> bool:
    return bool(_AFFIRM.match(message)) and not denies(message)


def denies(message: str) -> bool:
    return bool(_DENY.match(message))


EntityNames = Callable[[str], Mapping[str, Sequence[str]]]
"""The entities of a knowledge type, each with the phrases that name it
(``"product"`` → ``{"Aurora Kettle": ["Aurora Kettle", "kettle"]}``)."""


def extract_slots(
    message: str,
    domain: Domain,
    slots: Sequence[str],
    *,
    requested: str | None = None,
    entities: EntityNames | None = None,
) -> dict[str, Any]:
    """Values for ``slots`` found in ``message`` (a requested text slot takes the message)."""
    found: dict[str, Any] = {}
    for name in dict.fromkeys(slots):
        spec = domain.spec.slots[name]
        value = _find(message, spec, entities)
        if value is None and name == requested and spec.type == "text" and not spec.pattern:
            value = message.strip()
        if value is not None:
            found[name] = value
    return found


def normalize_value(domain: Domain, slot: str, value: Any) -> Any:
    """A scripted value in the form the extractor stores (for comparisons in evaluation)."""
    spec = domain.spec.slots.get(slot)
    if spec is None or value is None:
        return value
    if spec.type == "number":
        try:
            return _number(str(value))
        except ValueError:
            return value
    if spec.type == "date" and isinstance(value, dt.date):
        return value.isoformat()
    if spec.type == "text" and isinstance(value, str) and _EMAIL_LIKE.fullmatch(value):
        return value.lower()
    return value


def _find(message: str, spec: SlotSpec, entities: EntityNames | None) -> Any:
    if spec.type == "number":
        pattern = spec.pattern or r"-?\d+(?:\.\d+)?"
        value = _kept(message, re.finditer(pattern, message))
        return _number(value) if value is not None else None
    if spec.type == "text":
        if not spec.pattern:
            return None
        value = _kept(message, re.finditer(spec.pattern, message, re.I))
        return value.lower() if value and _EMAIL_LIKE.fullmatch(value) else value
    if spec.type == "enum":
        return _phrase(message, enum_phrases(spec.values))
    if spec.type == "entity":
        return _phrase(message, entities(spec.entity) if entities and spec.entity else {})
    if spec.type == "date":
        return _date(message)
    raise AssertionError(spec.type)


def _kept(message: str, matches: Any) -> str | None:
    """The first match that is not being taken back ("…, not 5512")."""
    kept = [m for m in matches if not _negated(message, m.start(), m.end())]
    if not kept:
        return None
    m = kept[0]
    return m.group(1) if m.groups() and m.group(1) else m.group(0)


def _negated(message: str, start: int, end: int) -> bool:
    return bool(_NEGATED_BEFORE.search(message[max(0, start - 24):start])
                or _NEGATED_AFTER.match(message[end:end + 24]))


def _number(text: str) -> int | float:
    number = float(text)
    return int(number) if number.is_integer() else number


def enum_phrases(values: dict[str, list[str]] | list[str] | None) -> dict[str, list[str]]:
    """An enum slot's values, each with the phrases that say it: itself (``_`` as spaces)
    and its synonyms."""
    if isinstance(values, dict):
        return {k: [k.replace("_", " "), *v] for k, v in values.items()}
    return {v: [v.replace("_", " ")] for v in values or []}


def _phrase(message: str, options: Mapping[str, Sequence[str]]) -> str | None:
    """The option one of whose phrases occurs in ``message`` (the longest phrase wins,
    skipping phrases the user takes back)."""
    best: tuple[int, str] | None = None
    for value, phrases in options.items():
        for phrase in phrases:
            for m in re.finditer(rf"\b{re.escape(phrase)}\b", message, re.I):
                if not _negated(message, m.start(), m.end()) and (
                        best is None or len(phrase) > best[0]):
                    best = (len(phrase), value)
    return best[1] if best else None


def _date(message: str) -> str | None:
    match = _DATE_WORDS.search(message)
    if not match:
        return None
    today = dt.date.today()
    word = match.group(1).lower()
    relative = {"today": 0, "tomorrow": 1, "yesterday": -1}
    if word in relative:
        return (today + dt.timedelta(days=relative[word])).isoformat()
    from dateutil import parser

    try:
        return parser.parse(message, fuzzy=True, default=dt.datetime(today.year, 1, 1)).date(
        ).isoformat()
    except (ValueError, OverflowError):
        return None
