"""Dialogue state tracking on MultiWOZ 2.1 (``dialoop eval multiwoz``).

Data: a folder holding ``val.json.zip`` (or ``val.json``/``data.json``, zipped or not):
``{dialogue_id: {"log": [turn, ...]}}`` where user and system turns alternate and each
system turn's ``metadata`` is the belief state after the user turn before it. Also read
when present: ``ontology21.json`` (``"hotel-semi-area": [values]``) and ``db/*_db.json``
(names of hotels, restaurants, attractions and stations), the candidate values.

Conventions (as TRADE and most papers since): the five domains hotel, train, restaurant,
attraction and taxi (police, hospital and bus dropped); ``booked`` lists ignored; values
lowercased, "", "not mentioned" and "none" mean unset; the spellings of "don't care"
become ``dontcare``; a few frequent label spellings are unified (:data:`LABEL_FIXES`).
Slots are named ``domain-slot``, booking slots ``domain-book-slot`` ("hotel-book-stay").

Metrics, per user turn: joint goal accuracy (the predicted state equals the gold state
exactly) and slot F1 (micro over the turn's set (slot, value) pairs).

``split=K`` reports on the dialogues after the first K (the held-out part); a learned
gate over the tracker's proposals (:func:`train_multiwoz_gate`) is trained on the first K
only.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dialoop.dialogue.tracker import SlotSchema, TrackerSchema, ValueTracker
from dialoop.errors import ConfigError

if TYPE_CHECKING:
    from dialoop.dialogue.gate import LearnedGate

__all__ = ["DOMAINS", "MultiwozDialogue", "MultiwozReport", "Tracker", "evaluate_tracker",
           "load_dialogues", "multiwoz_schema", "normalise_state", "normalise_value",
           "score_turns", "train_multiwoz_gate", "value_tracker"]

DOMAINS = ("attraction", "hotel", "restaurant", "taxi", "train")
UNSET = {"", "not mentioned", "none", "not given", "no mentioned"}
DONTCARE_SPELLINGS = {"dont care", "don't care", "do n't care", "do nt care", "dontcare",
                      "does not care", "doesn't care", "doesnt care", "dont care ", "any"}
LABEL_FIXES = {"guesthouses": "guesthouse", "guest house": "guesthouse", "center": "centre",
               "moderately": "moderate", "moderate -ly": "moderate", "mutiple sports":
               "multiple sports", "swimmingpool": "swimming pool", "concerthall": "concert hall",
               "concert": "concert hall", "night club": "nightclub", "mutliple sports":
               "multiple sports", "theater": "theatre", "museums": "museum",
               "colleges": "college", "churches": "church", "boats": "boat",
               "parks": "park", "free": "yes", "y": "yes", "n": "no"}
# published joint goal accuracy on the MultiWOZ 2.1 *test* set, for scale
PUBLISHED = [("TRADE (Wu et al. 2019, as reported by Eric et al. 2020)", 0.456),
             ("TripPy (Heck et al. 2020)", 0.553), ("SimpleTOD (Hosseini-Asl et al. 2020)", 0.558)]

State = dict[str, str]


class Tracker(Protocol):
    def reset(self) -> None: ...
    def update(self, user: str, system: str = "") -> Mapping[str, str]: ...


@dataclass(frozen=True)
class MultiwozTurn:
    user: str
    system: str   # the system reply before this user turn ("" for the first)
    state: State  # gold belief state after this user turn


@dataclass(frozen=True)
class MultiwozDialogue:
    id: str
    turns: tuple[MultiwozTurn, ...]


@dataclass
class MultiwozReport:
    data: str
    dialogues: int
    turns: int
    joint_goal_accuracy: float
    slot_precision: float
    slot_recall: float
    slot_f1: float
    split: int | None = None
    seconds: float = 0.0
    empty_state_jga: float = 0.0  # what predicting nothing scores on the same turns
    worst_slots: list[tuple[str, int]] = field(default_factory=list)  # slot, wrong turns

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalise_value(value: str) -> str | None:
    """A gold or predicted value in the common form, or ``None`` for "unset"."""
    value = " ".join(str(value).lower().split())
    if value in UNSET:
        return None
    if value in DONTCARE_SPELLINGS:
        return "dontcare"
    return LABEL_FIXES.get(value, value)


def normalise_state(metadata: Mapping[str, Any]) -> State:
    """A MultiWOZ ``metadata`` belief state as ``{"domain-slot": value}``, five domains."""
    state: State = {}
    for domain in DOMAINS:
        parts = metadata.get(domain) or {}
        for part, prefix in (("semi", f"{domain}-"), ("book", f"{domain}-book-")):
            for slot, raw in (parts.get(part) or {}).items():
                if slot == "booked" or not isinstance(raw, str):
                    continue
                value = normalise_value(raw)
                if value is not None:
                    state[prefix + slot.lower()] = value
    return state


def load_dialogues(data: Path, limit: int | None = None) -> list[MultiwozDialogue]:
    raw = _read_json(data)
    dialogues = []
    for dialogue_id, body in raw.items():
        log = body.get("log") if isinstance(body, dict) else None
        if not isinstance(log, list):
            raise ConfigError(f"{data}: dialogue {dialogue_id} has no 'log' list; is this "
                              "MultiWOZ 2.1 data?")
        turns, system = [], ""
        for i in range(0, len(log) - 1, 2):
            turns.append(MultiwozTurn(log[i]["text"], system,
                                      normalise_state(log[i + 1].get("metadata") or {})))
            system = log[i + 1]["text"]
        dialogues.append(MultiwozDialogue(dialogue_id, tuple(turns)))
        if limit is not None and len(dialogues) >= limit:
            break
    return dialogues


def _read_json(data: Path) -> dict[str, Any]:
    if data.is_dir():
        names = ("val.json.zip", "val.json", "data.json.zip", "data.json")
        found = [data / n for n in names if (data / n).is_file()]
        if not found:
            raise ConfigError(f"{data} has none of {', '.join(names)}: point --data at the "
                              "MultiWOZ 2.1 folder (e.g. ../shared/data/multiwoz21)")
        data = found[0]
    if not data.is_file():
        raise ConfigError(f"{data} does not exist")
    if data.suffix == ".zip":
        with zipfile.ZipFile(data) as z:
            member = next((n for n in z.namelist() if n.endswith(".json")), None)
            if member is None:
                raise ConfigError(f"{data} holds no .json file")
            return json.loads(z.read(member))
    return json.loads(data.read_text(encoding="utf-8"))


def score_turns(pairs: Iterable[tuple[State, State]]) -> tuple[float, float, float, float]:
    """(JGA, precision, recall, F1) over ``(predicted, gold)`` states, one per turn."""
    turns = joint = tp = fp = fn = 0
    for predicted, gold in pairs:
        turns += 1
        joint += predicted == gold
        p, g = set(predicted.items()), set(gold.items())
        tp, fp, fn = tp + len(p & g), fp + len(p - g), fn + len(g - p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return (joint / turns if turns else 0.0), precision, recall, f1


def evaluate_tracker(dialogues: list[MultiwozDialogue], tracker: Tracker, *, source: str = "",
                     split: int | None = None,
                     progress: Callable[[int], None] | None = None) -> MultiwozReport:
    """Run ``tracker`` over every turn of ``dialogues[split:]`` and score it."""
    start = time.perf_counter()
    held_out = dialogues[split:] if split else dialogues
    pairs: list[tuple[State, State]] = []
    wrong: dict[str, int] = {}
    for dialogue in held_out:
        tracker.reset()
        for turn in dialogue.turns:
            predicted: State = {}
            for slot, raw in tracker.update(turn.user, turn.system).items():
                value = normalise_value(raw)
                if value is not None:
                    predicted[slot] = value
            pairs.append((predicted, turn.state))
            for slot in set(predicted) | set(turn.state):
                if predicted.get(slot) != turn.state.get(slot):
                    wrong[slot] = wrong.get(slot, 0) + 1
        if progress is not None:
            progress(1)
    jga, precision, recall, f1 = score_turns(pairs)
    empty, *_ = score_turns(({}, gold) for _, gold in pairs)
    return MultiwozReport(source, len(held_out), len(pairs), jga, precision, recall, f1, split,
                          time.perf_counter() - start, empty,
                          sorted(wrong.items(), key=lambda kv: -kv[1])[:8])


# -- the MultiWOZ schema for the value-matching tracker ---------------------------------------

_DOMAIN_WORDS = {
    "hotel": ("hotel", "hotels", "guesthouse", "guesthouses", "guest house", "guest houses",
              "place to stay", "somewhere to stay", "lodging", "accommodation",
              "bed and breakfast", "room", "rooms", "where i can stay", "stay in"),
    "train": ("train", "trains", "travel", "traveling", "travelling", "station", "railway"),
    "restaurant": ("restaurant", "restaurants", "food", "place to eat", "somewhere to eat",
                   "dine", "dinner", "lunch", "table", "eat", "cuisine", "dining"),
    "attraction": ("attraction", "attractions", "museum", "museums", "college", "colleges",
                   "entertainment", "park", "parks", "nightclub", "nightclubs", "cinema",
                   "cinemas", "theatre", "theatres", "theater", "architecture", "church",
                   "churches", "swimming pool", "pool", "boat", "boats", "something to do",
                   "things to do", "places to go", "place to go", "somewhere to go", "sports",
                   "concert hall", "visit", "gallery"),
    "taxi": ("taxi", "cab", "car"),
}
_AREAS = {"north": "north", "south": "south", "east": "east", "west": "west", "centre": "centre",
          "center": "centre", "city centre": "centre", "centre of town": "centre",
          "downtown": "centre", "northern": "north", "southern": "south", "eastern": "east",
          "western": "west", "central": "centre"}
_PRICES = {"cheap": "cheap", "moderate": "moderate", "moderately": "moderate",
           "expensive": "expensive", "inexpensive": "cheap", "cheaper": "cheap",
           "cheapest": "cheap", "upscale": "expensive", "high end": "expensive",
           "mid range": "moderate", "low cost": "cheap"}
_DAYS = {d: d for d in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                        "sunday")}
_HOTEL_TYPES = {"guesthouse": "guesthouse", "guest house": "guesthouse",
                "guesthouses": "guesthouse", "bed and breakfast": "guesthouse"}
# the words that ask for (or say) the departure and the destination: "where will you be
# departing from?" "the museum"
_DEPARTURE_CUES = ("from", "depart", "departing", "departure", "pick", "picked", "pickup",
                   "leave", "leaving")
_DESTINATION_CUES = ("to", "going", "get to", "go to", "headed", "destination", "arrive",
                     "arriving")
_FROM = ("from", "out of", "leaving", "leave", "depart", "departing", "departs", "leaves",
         "pick me up at", "pick up at", "picked up at")
_TO = ("to", "arrive at", "arrive in", "arriving in", "arrives in", "arriving at",
       "into", "destination is", "for", "in")
# "leave the hotel": the taxi's places are often the places already in the state
_PLACES = {"hotel": ("the hotel", "the guesthouse", "the guest house"),
           "restaurant": ("the restaurant",),
           "attraction": ("the attraction", "the museum", "the college", "the park",
                          "the theatre", "the church")}
_REFERENCES = {phrase: (f"{domain}-name",) for domain, phrases in _PLACES.items()
               for phrase in phrases}
_SAME = {"area": ("area", "part of town", "side of town", "location", "section of town"),
         "pricerange": ("price range", "pricerange", "price"), "book-day": ("day",),
         "day": ("day",), "book-people": ("group", "number of people", "people")}


def _same(slot: str) -> dict[str, tuple[str, ...]]:
    """"the same area as the hotel" -> ("hotel-area",); "the same day" -> any domain's day."""
    domain, _, name = slot.partition("-")
    out: dict[str, tuple[str, ...]] = {}
    others = [d for d in _PLACES if d != domain] + (["train"] if domain != "train" else [])
    kin = ("book-day", "day") if "day" in name else (name,)
    for word in _SAME.get(name, ()):
        out[f"same {word}"] = tuple(f"{d}-{k}" for d in others for k in kin)
        for other in others:
            for phrase in (f"{other}", f"the {other}", f"my {other}"):
                out[f"same {word} as {phrase}"] = tuple(f"{other}-{k}" for k in kin)
    return out


def multiwoz_schema(data: Path) -> TrackerSchema:
    """The tracker schema for MultiWOZ: values from ``ontology21.json`` and ``db/``."""
    ontology = _ontology(data)
    names = {d: _db_names(data, d) for d in ("hotel", "restaurant", "attraction")}
    stations = (ontology.get("train-semi-departure", set())
                | ontology.get("train-semi-destination", set()) | _stations(data))
    places = {v for table in names.values() for v in table.values()}
    food = {f: f for f in ontology.get("restaurant-semi-food", set()) if f != "dontcare"}
    attraction_types = {t: t for t in ontology.get("attraction-semi-type", set())
                        if t not in {"dontcare", "churchills college", "hotel"}}
    # the ontology spells some types only as the labels do before LABEL_FIXES ("night club",
    # "concerthall"): each value is said as its fixed form too, and means that form
    fixed = {t: LABEL_FIXES.get(t, t) for t in attraction_types}
    attraction_types = {**{v: v for v in fixed.values()}, **fixed}
    attraction_types.update({"museums": "museum", "colleges": "college", "parks": "park",
                             "theater": "theatre", "churches": "church", "boats": "boat",
                             "night club": "nightclub", "swimming": "swimming pool",
                             "pool": "swimming pool", "theatres": "theatre",
                             "cinemas": "cinema", "nightclubs": "nightclub"})
    # "a taxi from the nightclub": a place is also named by its type
    references = {**_REFERENCES, "my hotel": ("hotel-name",)}
    references.update({f"the {t}": ("attraction-name",) for t in attraction_types
                       if f"the {t}" not in references})
    slots: list[SlotSchema] = []
    for domain in ("hotel", "restaurant", "attraction"):
        slots.append(SlotSchema(f"{domain}-name", domain, values=names[domain],
                                cues=("name", "called"), offered=True, fuzzy=True))
        slots.append(SlotSchema(f"{domain}-area", domain, values=_AREAS,
                                cues=("area", "part of town", "side", "section")))
    for domain in ("hotel", "restaurant"):
        slots.append(SlotSchema(f"{domain}-pricerange", domain, values=_PRICES,
                                cues=("price", "price range", "pricerange", "cost")))
        slots.append(SlotSchema(f"{domain}-book-people", domain, "number",
                                cues=("people", "person", "persons", "guests", "of us", "adults",
                                      "adult"),
                                before=("for", "group of", "party of")))
        slots.append(SlotSchema(f"{domain}-book-day", domain, values=_DAYS,
                                cues=("day", "on", "starting", "arriving")))
    slots += [
        SlotSchema("hotel-book-stay", "hotel", "number", cues=("night", "nights", "day", "days")),
        SlotSchema("hotel-stars", "hotel", "number", cues=("star", "stars"),
                   before=("star of", "stars of", "rating of")),
        SlotSchema("hotel-type", "hotel", values=_HOTEL_TYPES, cues=("type",),
                   loose={"hotel": "hotel"}),
        SlotSchema("hotel-parking", "hotel", "flag", cues=("parking", "park")),
        SlotSchema("hotel-internet", "hotel", "flag", cues=("internet", "wifi", "wi fi")),
        SlotSchema("restaurant-food", "restaurant", values=food,
                   cues=("food", "cuisine", "type"), fuzzy=True),
        SlotSchema("restaurant-book-time", "restaurant", "time", cues=("at", "for", "time")),
        SlotSchema("attraction-type", "attraction", values=attraction_types, cues=("type",)),
        SlotSchema("train-day", "train", values=_DAYS, cues=("day", "on")),
        SlotSchema("train-book-people", "train", "number",
                   cues=("people", "person", "persons", "tickets", "ticket", "seats", "of us",
                         "adult", "adults", "passengers"),
                   before=("for", "group of", "party of")),
    ]
    for domain, values in (("train", stations), ("taxi", places | stations)):
        table = {v: v for v in values if v not in {"dontcare", "cambridge"} or domain == "train"}
        # a train's other end is Cambridge when unsaid (every train in the db starts or
        # ends there): a guess for a gate to take
        train = domain == "train"
        slots += [
            SlotSchema(f"{domain}-departure", domain, values=table, cues=_DEPARTURE_CUES,
                       before=_FROM, references=references if domain == "taxi" else {},
                       fuzzy=True, implied={"train-destination": "cambridge"} if train else {}),
            SlotSchema(f"{domain}-destination", domain, values=table, cues=_DESTINATION_CUES,
                       before=_TO, references=references if domain == "taxi" else {},
                       fuzzy=True, implied={"train-departure": "cambridge"} if train else {}),
            SlotSchema(f"{domain}-leaveat", domain, "time",
                       cues=("leave", "leaving", "leaves", "depart", "departing", "after",
                             "departs", "from", "pick", "at")),
            SlotSchema(f"{domain}-arriveby", domain, "time",
                       cues=("arrive", "arriving", "arrives", "by", "before", "get there",
                             "there by", "until")),
        ]
    slots = [s if s.references else replace(s, references=_same(s.name)) for s in slots]
    return TrackerSchema(tuple(slots), _DOMAIN_WORDS)


def _ontology(data: Path) -> dict[str, set[str]]:
    path = data / "ontology21.json" if data.is_dir() else data.parent / "ontology21.json"
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, set[str]] = {}
    for key, values in raw.items():
        # single values only: "cheap|moderate" and "a>b" are annotation artefacts
        out[key.lower()] = {v.lower().strip() for v in values
                            if v.strip() and not any(c in v for c in "|<>")}
    return out


def _db_rows(data: Path, domain: str) -> list[dict[str, Any]]:
    folder = data / "db" if data.is_dir() else data.parent / "db"
    path = folder / f"{domain}_db.json"
    rows = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    return rows if isinstance(rows, list) else []


def _db_names(data: Path, domain: str) -> dict[str, str]:
    """Surface -> value for the names in a domain's db. Annotators mostly drop "the"
    ("the lensfield hotel" -> "lensfield hotel") but keep it when one word is left ("the
    junction", "the gandhi"): 17 of 20 such labels on dialogues 1-700, 40 of 55 others."""
    names = {}
    for row in _db_rows(data, domain):
        name = " ".join(str(row.get("name", "")).lower().replace("'", "").split())
        if name:
            short = name.removeprefix("the ")
            if " " in short:  # "the place" is a name, "place" is not
                names[name] = names[short] = short
            else:
                names[name] = name
    return names


def _stations(data: Path) -> set[str]:
    return {str(row.get(k, "")).lower() for row in _db_rows(data, "train")
            for k in ("departure", "destination") if row.get(k)}


def value_tracker(data: Path, gate: Path | None = None) -> ValueTracker:
    """The value-matching tracker with the MultiWOZ schema read from ``data``, and the
    gate written by ``dialoop train tracker-gate`` at ``gate`` (none: the rules alone)."""
    from dialoop.dialogue.gate import LearnedGate

    return ValueTracker(multiwoz_schema(data), LearnedGate.load(gate) if gate else None)


def train_multiwoz_gate(data: Path, dialogues: Sequence[MultiwozDialogue],
                        progress: Callable[[int], None] | None = None) -> LearnedGate:
    """A :class:`~dialoop.dialogue.gate.LearnedGate` for the MultiWOZ schema, fitted on
    ``dialogues`` (keep the ones you report on out of them)."""
    from dialoop.dialogue.gate import Turn, train_gate

    turns = ([Turn(t.user, t.system, t.state) for t in d.turns] for d in dialogues)
    return train_gate(value_tracker(data), turns, normalise=normalise_value, progress=progress)
