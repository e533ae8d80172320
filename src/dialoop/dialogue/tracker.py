"""A schema-driven value-matching state tracker for multi-domain dialogue.

The tracker knows nothing about any one data set: it is given a :class:`TrackerSchema`
(domains, the words that name them, and per slot its candidate values, the words that
point at it and its kind) and, turn by turn, updates a flat ``{"domain-slot": value}``
state from the user's message and the assistant's previous reply. MultiWOZ's schema is
built in :mod:`dialoop.eval.multiwoz`; a domain file's by :func:`domain_schema` (the
dialogue manager uses it when the domain sets ``understanding.tracker``).

What one turn does:

1. Active domains: those the user names; else those the assistant just named; else the
   ones from the previous turn. A name a current domain's slot can hold ("leave the
   castle galleries at 5" while booking a taxi) and a reference phrase of a current
   domain ("a taxi to the hotel") do not name another domain.
2. Values of ``value`` slots are found as whole phrases (longest first, no overlaps);
   for ``fuzzy`` slots also near spellings ("milton county park", rapidfuzz). A phrase
   several slots could hold goes to the slot whose ``before`` words ("from", "picked up
   at") precede it, else whose cue word is near, else the one the assistant just asked
   about ("where will you leave from?" "the museum"), else stays unassigned. A reference
   ("the hotel") is the value already in the state, else the one the assistant last
   offered. A value right after "not", "instead of" or "rather than" is being taken
   back ("not the north, the east"), never set.
3. ``number`` slots take a digit or number word next to one of their cues ("4 people",
   "3 nights", "4 star"); ``time`` slots take ``hh:mm``/``7pm`` with the slot whose
   longest cue precedes it ("leave the hotel by 3:30" is a time to leave); ``flag``
   slots become "yes" when a cue word is said.
4. "Doesn't matter"-style phrases set ``dontcare`` on the slot whose cue the user said
   nearest the phrase, else on the slot the assistant just asked about.
5. Everything else is carried over from the previous state.

A :class:`Gate` may filter the proposed changes and take looser guesses (a name the
assistant offered without a clear "yes", a ``loose`` word such as "hotel" for the hotel
type, an ``implied`` value such as a train's other end being Cambridge). The rules alone
take no guess; :class:`~dialoop.dialogue.gate.LearnedGate`, trained on annotated
dialogues, decides each proposal from features of it and the turn. (An earlier gate,
gradient-boosted trees over MiniLM sentence features, did not beat the rules: 0.383 JGA
held out against 0.386.)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rapidfuzz import fuzz, process

from dialoop.dialogue.domain import Domain
from dialoop.dialogue.state import enum_phrases

__all__ = ["Gate", "SlotSchema", "TrackerSchema", "ValueTracker", "domain_schema",
           "normalise_text"]

DONTCARE = "dontcare"
_NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                 "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
                 "a single": "1"}
_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\b")
_CUE_WINDOW = 4  # words either side of a value in which a slot cue counts
_FUZZY_SCORE = 85  # rapidfuzz ratio (0-100) a misspelt value must reach
_FUZZY_MIN_CHARS = 8  # shorter values ("ask", "thai") are matched exactly only
# words right before a value that take it back: "not the north", "instead of the east"
_TAKEN_BACK = re.compile(r"(?:^|\s)(?:not|instead of|rather than|isnt|wasnt)\s+"
                         r"(?:(?:in|at|on|from|to)\s+)?(?:the\s+)?$")


@dataclass(frozen=True)
class SlotSchema:
    name: str                                    # "hotel-area"
    domain: str                                  # "hotel"
    kind: str = "value"                          # value | number | time | flag
    values: Mapping[str, str] = field(default_factory=dict)  # surface phrase -> value
    cues: tuple[str, ...] = ()                   # words that point at this slot
    before: tuple[str, ...] = ()                 # words right before a value of this slot
    # a phrase that means "the value of that other slot": "the hotel" -> ("hotel-name",)
    references: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    offered: bool = False  # a value the assistant named is taken when the user accepts it
    loose: Mapping[str, str] = field(default_factory=dict)  # guesses only a gate may take
    fuzzy: bool = False  # a misspelt value ("the gardina") is matched too (names)
    # a value the slot holds unsaid, a guess only a gate may take: {other slot: value}
    # means "this slot is probably ``value`` when the other slot holds something else"
    # (a train from Ely goes to Cambridge: {"train-departure": "cambridge"})
    implied: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackerSchema:
    slots: tuple[SlotSchema, ...]
    domain_words: Mapping[str, tuple[str, ...]]  # domain -> words naming it
    accept_words: tuple[str, ...] = (
        "yes", "yeah", "sure", "book", "sounds good", "sounds great", "sounds nice",
        "that works", "perfect", "great", "reserve", "that one", "okay", "ok")
    dontcare_phrases: tuple[str, ...] = (
        "do not care", "dont care", "doesnt matter", "does not matter", "dont mind",
        "no preference", "not important", "either is fine", "any will do", "whatever",
        "anything is fine", "dont have a preference", "no particular", "any area",
        "any price", "any type", "any part", "any day", "anywhere", "any time",
        "no area preference", "dont have an area preference", "dont have a price preference",
        "not really")

    def in_domain(self, domain: str) -> list[SlotSchema]:
        return [s for s in self.slots if s.domain == domain]


def normalise_text(text: str) -> str:
    """Lowercase, join MultiWOZ's split contractions ("does n't" -> "doesnt"), drop
    punctuation except ``:`` in times, collapse spaces."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"\s*n'?t\b", "nt", text)
    text = re.sub(r"\s'(s|re|ll|d|m|ve)\b", r"'\1", text).replace("'", "")
    text = re.sub(r"(?<!\d):|:(?!\d)", " ", text)
    text = re.sub(r"[^a-z0-9: ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def _find(text: str, phrase: str) -> list[int]:
    """Word-boundary character offsets of ``phrase`` in ``text``."""
    if phrase not in text:  # most phrases are not there: skip the regular expression
        return []
    return [m.start() for m in _pattern(phrase).finditer(text)]


def _blank(text: str, phrase: str) -> str:
    """``text`` with every whole-word ``phrase`` replaced by a space."""
    return _pattern(phrase).sub(" ", text) if phrase in text else text


@functools.cache
def _pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])")


def _has_any(text: str, words: Sequence[str]) -> bool:
    return any(_find(text, w) for w in words)


class Gate(Protocol):
    """Decides which proposed ``(slot, value, loose)`` changes a turn makes; ``tracker``
    still holds the state and active domains from before the turn, ``user`` and
    ``system`` are normalised."""

    def keep(self, tracker: ValueTracker, user: str, system: str,
             proposals: Sequence[tuple[str, str, bool]]) -> list[bool]: ...


class ValueTracker:
    """Tracks one dialogue at a time: :meth:`reset`, then :meth:`update` per user turn."""

    def __init__(self, schema: TrackerSchema, gate: Gate | None = None) -> None:
        self.schema = schema
        self.gate = gate
        self.state: dict[str, str]
        self.active: list[str]
        self.mentioned: dict[str, str]  # slot -> the last value the assistant offered
        self.reset()
        # longest first; ties in a fixed order, so that a run does not depend on set order
        self._names = sorted({(surface, s.domain) for s in schema.slots if s.offered
                              for surface in s.values}, key=lambda sd: (-len(sd[0]), sd))
        self._held: dict[str, set[str]] = {}  # domain -> the value phrases its slots hold
        for slot in schema.slots:
            if slot.kind == "value":
                self._held.setdefault(slot.domain, set()).update(slot.values)

    def reset(self) -> None:
        # a schema of one domain (a domain file's) is always in it
        home = list(self.schema.domain_words) if len(self.schema.domain_words) == 1 else []
        self.state, self.active, self.mentioned = {}, home, {}

    def update(self, user: str, system: str = "") -> dict[str, str]:
        """The state after the user's message ``user`` (``system``: the reply before it)."""
        user, system = normalise_text(user), normalise_text(system)
        self.mentioned.update(self._offered(system, self.schema.slots, {}))
        self.active = (self._domains(user, self.active) or self._domains(system, self.active)
                       or self.active)
        found, loose = self.propose(user, system)
        if self.gate is not None:
            proposals = [(slot, value, False) for slot, value in found.items()] + [
                (slot, value, True) for slot, value in loose.items() if slot not in found]
            keep = self.gate.keep(self, user, system, proposals) if proposals else []
            found = {slot: value for (slot, value, _), ok in zip(proposals, keep, strict=True)
                     if ok}
        self.state = {**self.state, **found}
        return dict(self.state)

    def propose(self, user: str, system: str) -> tuple[dict[str, str], dict[str, str]]:
        """The values the rules find in a normalised turn, and looser guesses (a value the
        assistant offered without a clear yes) that only a :class:`Gate` may take."""
        found: dict[str, str] = {}
        loose: dict[str, str] = {}
        for domain in self.active:
            slots = self.schema.in_domain(domain)
            found.update(self._values(user, slots, system))
            found.update(self._numbers(user, slots))
            found.update(self._times(user, slots))
            found.update(self._flags(user, slots))
            found.update(self._dontcare(user, system, slots, found))
            found.update(self._accepted(user, system, slots, found))
            loose.update(self._offered(system, slots, found))
            loose.update({s.name: v for s in slots for w, v in s.loose.items()
                          if s.name not in found and _find(user, w)})
            loose.update(self._implied(slots, found, loose))
        return found, loose

    def _implied(self, slots: Sequence[SlotSchema], found: Mapping[str, str],
                 loose: Mapping[str, str]) -> dict[str, str]:
        out = {}
        for slot in slots:
            if slot.name in found or slot.name in loose or slot.name in self.state:
                continue
            for other, value in slot.implied.items():
                held = found.get(other) or self.state.get(other)
                if held and held != value:
                    out[slot.name] = value
        return out

    def _domains(self, text: str, current: Sequence[str] = ()) -> list[str]:
        """Domains named by a domain word; else by a name only that domain has.
        A name a current domain's slot can hold keeps that domain ("leave the castle
        galleries at 5" while booking a taxi stays with the taxi)."""
        by_name, keep = [], []
        for surface, domain in self._names:  # "acorn guest house" does not name hotels
            masked = _blank(text, surface)
            if masked != text:
                text = masked
                held = [d for d in current if surface in self._held.get(d, ())]
                if held:
                    keep += held
                else:
                    by_name.append(domain)
        for surface in self._refs(current):  # "a taxi to the hotel": a place, not a hotel
            text = _blank(text, surface)
        named = [d for d, words in self.schema.domain_words.items() if _has_any(text, words)]
        return named or list(dict.fromkeys(by_name + keep))

    def _refs(self, domains: Sequence[str]) -> list[str]:
        """The reference phrases ("the hotel") of the slots of ``domains``, longest first."""
        return sorted({r for d in domains for s in self.schema.in_domain(d)
                       for r in s.references}, key=lambda r: (-len(r), r))

    def _values(self, text: str, slots: list[SlotSchema], system: str = "") -> dict[str, str]:
        phrases: dict[str, list[tuple[SlotSchema, str]]] = {}
        for slot in slots:
            if slot.kind == "value":
                for surface, value in slot.values.items():
                    phrases.setdefault(surface, []).append((slot, value))
            for surface, others in slot.references.items():
                # "the hotel" is the hotel already chosen, else the one last offered
                known = [self.state[o] for o in others if o in self.state] or [
                    self.mentioned[o] for o in others if o in self.mentioned]
                if known:
                    phrases.setdefault(surface, []).append((slot, known[0]))
        spans = [(start, start + len(surface), surface)
                 for surface in sorted(phrases, key=lambda p: (-len(p), p))
                 for start in _find(text, surface)]
        fuzzy = [surface for surface, options in phrases.items()
                 if len(surface) >= _FUZZY_MIN_CHARS and any(s.fuzzy for s, _ in options)]
        spans += _misspelt(text, fuzzy, [(s, e) for s, e, _ in spans])
        taken: list[tuple[int, int]] = []
        out: dict[str, str] = {}
        for start, end, surface in spans:
            if any(s < end and start < e for s, e in taken):
                continue
            if _TAKEN_BACK.search(text[max(0, start - 24):start]):
                taken.append((start, end))  # "not the north": no value, nor a shorter one
                continue
            slot, value = _choose(text, start, end, phrases[surface], system)
            if slot is not None:
                taken.append((start, end))
                out.setdefault(slot.name, value)
        return out

    def _numbers(self, text: str, slots: list[SlotSchema]) -> dict[str, str]:
        words = text.split()
        out: dict[str, str] = {}
        numbered = [s for s in slots if s.kind == "number"]
        for i, word in enumerate(words):
            number = word if word.isdigit() and len(word) <= 2 else _NUMBER_WORDS.get(word)
            if number is None:
                continue
            after = " ".join(words[i + 1:i + 3])
            before = " ".join(words[max(0, i - 2):i])
            # a cue after the number ("2 nights") beats a word before it ("for 2")
            slot = next((s for s in numbered if any(after.startswith(c) for c in s.cues)),
                        next((s for s in numbered if any(before.endswith(b) for b in s.before)),
                             None))
            if slot is not None:
                out.setdefault(slot.name, number)
        return out

    def _times(self, text: str, slots: list[SlotSchema]) -> dict[str, str]:
        out: dict[str, str] = {}
        timed = [s for s in slots if s.kind == "time"]
        for m in _TIME.finditer(text):
            if not m.group(2) and not m.group(3):
                continue  # a bare number is not a time
            hour, minute = int(m.group(1)), m.group(2) or "00"
            if m.group(3) == "pm" and hour < 12:
                hour += 12
            value = f"{hour:02d}:{minute}"
            before = " ".join(text[:m.start()].split()[-4:])
            # the slot with the longest cue before the time: "leave the hotel by 3:30" is
            # a time to leave ("leave" beats "by"); on a tie the last slot listed
            longest = {s.name: max((len(c) for c in s.cues if _find(before, c)), default=0)
                       for s in timed}
            top = max(longest.values(), default=0)
            best = [s for s in timed if top and longest[s.name] == top]
            slot = best[-1] if best else (timed[0] if len(timed) == 1 else None)
            if slot is not None:
                out.setdefault(slot.name, value)
        return out

    def _accepted(self, user: str, system: str, slots: list[SlotSchema],
                  found: Mapping[str, str]) -> dict[str, str]:
        """A single value the assistant offered, when the user takes it ("yes, book it")."""
        if not _has_any(user, self.schema.accept_words) or _has_any(user, ("no", "not")):
            return {}
        return self._offered(system, slots, found)

    def _offered(self, system: str, slots: Sequence[SlotSchema],
                 found: Mapping[str, str]) -> dict[str, str]:
        out = {}
        for slot in slots:
            if slot.offered and slot.name not in found:
                named = {value for surface, value in slot.values.items() if _find(system, surface)}
                if len(named) == 1:
                    out[slot.name] = named.pop()
        return out

    def _flags(self, text: str, slots: list[SlotSchema]) -> dict[str, str]:
        return {s.name: "yes" for s in slots if s.kind == "flag" and _has_any(text, s.cues)}

    def _dontcare(self, user: str, system: str, slots: list[SlotSchema],
                  found: Mapping[str, str]) -> dict[str, str]:
        if not _has_any(user, self.schema.dontcare_phrases):
            return {}
        # the slot whose cue is nearest the phrase: "any price range, but in the centre
        # for dinner" is about the price, not the time ("for")
        spots = [i for p in self.schema.dontcare_phrases for i in _find(user, p)]
        distance = {s.name: min(abs(i - j) for i in spots for c in s.cues
                                for j in _find(user, c))
                    for s in slots if s.name not in found and _has_any(user, s.cues)}
        if distance:
            nearest = min(distance.values())
            return {name: DONTCARE for name, d in distance.items() if d == nearest}
        if found:  # "not really, but I want to get there by 20:45": the answer is a value
            return {}
        asked = [s for s in slots if s.name not in self.state and _has_any(system, s.cues)]
        return {asked[0].name: DONTCARE} if asked else {}


def _misspelt(text: str, surfaces: Sequence[str],
              exact: Sequence[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """Spans of ``text`` that are a near spelling of one of ``surfaces`` ("milton county
    park"), best first, as ``(start, end, surface)``; none overlaps an ``exact`` span.

    A near spelling has as many words as the value and differs from it only in words of
    four or more letters ("county"/"country"), so "a restaurant" is not "ask restaurant"."""
    by_length: dict[int, list[str]] = {}
    for surface in surfaces:
        by_length.setdefault(surface.count(" ") + 1, []).append(surface)
    words = [(m.start(), m.end()) for m in re.finditer(r"[a-z0-9:]+", text)]
    found = []
    for n, candidates in by_length.items():
        spans = [(words[i][0], words[i + n - 1][1]) for i in range(len(words) - n + 1)]
        spans = [(start, end) for start, end in spans if end - start >= _FUZZY_MIN_CHARS
                 and not any(s < end and start < e for s, e in exact)]
        if not spans:
            continue
        scores = process.cdist([text[s:e] for s, e in spans], candidates, scorer=fuzz.ratio,
                               score_cutoff=_FUZZY_SCORE)
        for (start, end), row in zip(spans, scores, strict=True):
            said = text[start:end].split()
            for k in row.nonzero()[0]:
                differ = [(a, b) for a, b in zip(said, candidates[k].split(), strict=True)
                          if a != b]
                if all(min(len(a), len(b)) >= 4 for a, b in differ):
                    found.append((int(row[k]), end - start, start, end, candidates[k]))
    found.sort(key=lambda f: (-f[0], -f[1], f[2], f[4]))
    return [(start, end, surface) for _, _, start, end, surface in found]


def _choose(text: str, start: int, end: int, options: list[tuple[SlotSchema, str]],
            system: str = "") -> tuple[SlotSchema | None, str]:
    """The slot a phrase at ``text[start:end]`` fills, among those it is a value of: the
    one whose ``before`` word precedes it, else whose cue is near, else the one the
    assistant just asked about ("where will you be departing from?" "the museum")."""
    if len(options) == 1:
        return options[0]
    left = text[:start].split()
    right = text[end:].split()
    if left and left[-1] == "the":  # "from the birmingham new street station"
        left = left[:-1]
    prev = " " + " ".join(left[-4:])  # "picked up at": a before phrase may be 3 words
    for slot, value in options:
        if any(prev.endswith(f" {b}") for b in slot.before):
            return slot, value
    near = " ".join(left[-_CUE_WINDOW:] + right[:_CUE_WINDOW])
    cued = [(slot, value) for slot, value in options if _has_any(near, slot.cues)]
    if len(cued) == 1:
        return cued[0]
    asked = [(slot, value) for slot, value in options if _has_any(system, slot.cues)]
    return asked[0] if len(asked) == 1 else (None, "")


# -- a dialoop domain file's schema ---------------------------------------------------------

EntityNames = Callable[[str], Mapping[str, Sequence[str]]]
"""The entities of a knowledge type, each with the phrases that name it."""

_NOT_CUES = frozenset({"the", "and", "for", "you", "your", "what", "which", "would", "like",
                       "please", "can", "could", "tell", "number", "name", "type", "did",
                       "use", "are", "with", "that", "this", "want", "does"})


def domain_schema(domain: Domain, entities: EntityNames | None = None) -> TrackerSchema:
    """The tracker schema of ``domain``'s ``enum`` and ``entity`` slots, all in one tracker
    domain named after it. Values: an enum's values and synonyms, an entity slot's names
    and aliases from ``entities`` (misspellings matched too; a single name the assistant
    offered is taken on a "yes"). Cues: the slot's name and label words, its ``cues``,
    and the question the assistant asks for it (:meth:`Domain.slot_question`), so an answer
    to that question is about the slot.
    Other slot types (patterns, numbers, dates, free text) are left to the rules."""
    slots = []
    for name, spec in domain.spec.slots.items():
        if spec.type == "enum":
            options = enum_phrases(spec.values)
        elif spec.type == "entity":
            options = enum_phrases(dict(entities(spec.entity))) \
                if entities and spec.entity else {}
        else:
            continue
        values: dict[str, str] = {}
        for value, phrases in options.items():
            for surface in phrases:
                if said := normalise_text(str(surface)):
                    values.setdefault(said, value)
        entity = spec.entity if spec.type == "entity" else None
        slots.append(SlotSchema(name, domain.name, values=values,
                                cues=_domain_cues(domain, name, entity),
                                fuzzy=entity is not None, offered=entity is not None))
    return TrackerSchema(tuple(slots), {domain.name: ()})


def _domain_cues(domain: Domain, name: str, entity: str | None) -> tuple[str, ...]:
    spec = domain.spec.slots[name]
    label = normalise_text(domain.slot_label(name))
    words = [w for w in f"{normalise_text(name.replace('_', ' '))} {label}".split()
             if len(w) >= 3 and w not in _NOT_CUES]
    phrases = [label, *spec.cues, entity or "", domain.slot_question(name), *words]
    return tuple(dict.fromkeys(c for p in phrases if (c := normalise_text(p))))
