"""Relation words: the many ways a question names what it asks about an entity.

A 22M-parameter sentence encoder knows that "Acme" is "Acme", but not that "Name the
CEO of Acme" asks what "Who is the chief executive of Acme?" asks (0.63), nor that
"What is the melting point of Acme?" does not ask what "… boiling point …" asks (0.87).
This table says it for common relations. Each *relation* has the phrases that name it;
a phrase may name more than one ("manages": the chief executive or a team's coach).

:func:`relations` finds the relations a question names; :func:`canonical` says a
message's relation phrases the way another question (a lesson's) says the same
relations, so that the encoder compares like with like; :func:`asks_for` tells the
kind of answer asked for (time, place, amount, person). The correction memory uses
them all (a lesson and a message that name different relations, or ask for different
kinds of answer, do not match, whatever the encoder says). The table is plain data,
written by hand, so that the knowledge graph's relation matching can share it; it
knows only the relations in it.
"""

from __future__ import annotations

import functools
import re

__all__ = ["CONTRASTS", "RELATIONS", "TITLES", "asks_for", "canonical", "contrasted",
           "disjoint", "is_relation_word", "phrases", "relations"]

# relation → phrases (regular expressions over lower-case words; longest found first).
# The first phrase is the canonical one. Written from the relations people commonly ask
# about (people in roles, places, times, amounts, properties, service facts).
RELATIONS: dict[str, tuple[str, ...]] = {
    "chief executive": (
        "chief executive", "chief executive officer", "ceo", "managing director", "boss",
        "heads?", "headed", "head of", "leads?", "led by", "leader", "leading", "runs?",
        "run by", "running", "in charge", "manag(?:es|ed|er|ing)", "top executive"),
    "chair": ("chair", "chairs", "chairman", "chairwoman", "chairperson", "chairs the board",
              "head of the board"),
    "founder": ("founder", "founded", "founding", "co-?founders?", "established", "set up",
                "started"),
    # Where (or from what) something comes: "originate", and the verbs of making said of
    # a place ("In which city was the band founded / created / formed?").
    "origin": ("origin", "originate", "originates", "originated", "comes? from", "came from",
               "native", "founded", "founding", "established", "started", "formed",
               "creat(?:ed|or|es)", "formulated", "developed", "invented", "made"),
    "owner": ("owner", "owns?", "owned", "belongs? to", "parent company"),
    "coach": ("coach", "coaches", "coached", "head coach", "trainer", "trains?",
              "training", "manag(?:es|ed|er|ing)", "in charge"),
    "captain": ("captain", "captains", "skipper"),
    "mayor": ("mayor", "city hall", "govern(?:s|ed|ing)?", "lord mayor"),
    "head of state": ("president", "prime minister", "king", "queen", "ruler", "rules",
                      "govern(?:s|ed|ing)?", "head of state", "head of government"),
    "capital": ("capital", "capital city", "seat of government"),
    "currency": ("currency", "money", "legal tender"),
    "language": ("language", "languages", "spoken", "speak", "speaks", "tongue"),
    "population": ("population", "inhabitants", "residents", "people live", "populous",
                   "people living", "lives? there"),
    "area": ("area", "square (?:kilometres|kilometers|miles)", "surface"),
    "location": ("located", "location", "be found", "found in", "lies", "lie",
                 "headquarters?", "headquartered", "based", "situated", "main office",
                 "head office", "address", "where is", "where are", "home to", "seat"),
    "birth": ("born", "birth", "birthplace", "native", "originate", "originates",
              "comes? from", "hometown", "place of birth"),
    "death": ("died", "dies", "die", "death", "pass(?:ed)? away", "succumb(?:ed)?"),
    "spouse": ("married", "marry", "wife", "husband", "spouse", "partner in marriage"),
    "child": ("child", "children", "son", "sons", "daughter", "daughters", "kids"),
    "parent": ("father", "mother", "parents?"),
    "author": ("wrote", "write", "writes", "written", "author", "authored", "penned",
               "creat(?:ed|or|es)"),
    "composer": ("composed", "composer", "compose", "composes", "music of", "music for",
                 "score", "wrote the music"),
    "director": ("directed", "director", "directs", "behind the camera", "filmmaker"),
    "performer": ("starred", "stars", "starring", "actor", "actress", "sang", "sings",
                  "singer", "lead role", "played the lead", "cast", "acts? in",
                  "acted in", "featured in", "lead singer", "vocalist", "lead vocals?",
                  "front(?:man|woman|person|s|ed)", "sings lead"),
    # A band's other members, each by what they play: "Who plays drums in X?" does not
    # ask for its singer.
    "drummer": ("drums?", "drummer", "plays drums", "on drums", "percussion(?:ist)?"),
    "guitarist": ("guitar", "guitars", "guitarist", "lead guitar"),
    "bassist": ("bass", "bassist", "bass guitar", "bass player"),
    "keyboardist": ("keyboards?", "keyboardist", "piano", "pianist"),
    "illustrator": ("illustrated", "illustrator", "illustrations?", "illustrates",
                    "drew the pictures", "drew pictures", "pictures", "artwork"),
    "translator": ("translated", "translator", "translation", "translates"),
    "editor": ("edited", "editor", "edits"),
    "designer": ("designed", "designer", "designs", "architect", "plans for", "drew up",
                 "engineer", "creat(?:ed|or|es)"),
    "inventor": ("invented", "inventor", "invents", "invention", "came up with",
                 "creat(?:ed|or|es)"),
    "developer": ("developed", "developer", "develops", "made by", "makes", "maker",
                  "manufacturer", "manufactured", "produced", "producer", "creat(?:ed|or|es)"),
    "discoverer": ("discovered", "discoverer", "discovery", "found", "first identified",
                   "identified", "first described", "first observed", "spotted",
                   "detected"),
    "premiere": ("premiere", "premiered", "first performed", "first shown", "released",
                 "release", "came out", "launched", "launch", "published", "publication",
                 "first published"),
    "built": ("built", "constructed", "construction", "erected", "went up", "go up"),
    "boiling point": ("boiling point", "boils?", "boiling", "boiled", "vapou?ri[sz]es",
                      "turns? to vapou?r", "boiling temperature"),
    "melting point": ("melting point", "melts?", "melting", "liquef(?:y|ies)"),
    "freezing point": ("freezing point", "freezes?"),
    "density": ("density", "dense"),
    "mass": ("mass", "weight", "weighs?", "heavy"),
    "height": ("height", "tall", "elevation"),
    "length": ("length", "long", "span"),
    "speed": ("speed", "top speed", "fast", "fastest", "velocity", "quick"),
    "price": ("price", "cost", "costs", "fare", "pay", "charge", "expensive", "fee", "fees"),
    # Insurance: what one pays first, and what one pays each month, are not the same fact.
    "deductible": ("deductible", "out of pocket", "excess"),
    "premium": ("premium", "premiums"),
    "check-in": ("check-in", "check in", "checking in", "checkin", "arrive", "arrival"),
    "check-out": ("check-out", "check out", "checking out", "checkout", "departure",
                  "vacate"),
    "warranty": ("warranty", "guarantee", "guaranteed"),
    "website": ("website", "web site", "homepage", "url"),
    "age": ("age", "how old"),
    "nickname": ("nickname", "nicknamed"),
    "password": ("password", "passcode", "network key", "wi-?fi code", "login code",
                 "code", "wi-?fi", "wifi password"),
    "phone": ("phone", "phone number", "telephone", "call", "dial", "hotline", "help line",
              "helpline", "number do i dial"),
    "email": ("email", "e-mail", "email address", "mail"),
    "hours": ("opening hours", "open", "opens", "close", "closes", "closing",
              "business hours", "hours"),
    "return": ("return window", "return", "returns", "return period", "send back",
               "sending back", "refund", "refunds"),
    "shipping": ("ship", "ships", "shipping", "deliver", "delivers", "delivery"),
    "satellites": ("moons", "moon", "natural satellites", "satellites"),
    "orbit period": ("year on", "orbital period", "orbit period", "to orbit"),
    "colour": ("colou?r", "colou?rs", "hue"),
    "diet": ("eat", "eats", "diet", "feed on", "feeds on"),
    "lifespan": ("live", "lives", "lifespan", "life expectancy"),
    "gestation": ("gestation", "gestation period", "pregnant", "pregnancy",
                  "carr(?:y|ies) its young"),
    "employees": ("employees", "staff", "workforce", "people work", "employ", "employs"),
    "industry": ("industry", "industries", "economy"),
    "depth": ("depth", "deep"),
    "toxicity": ("toxic", "poisonous", "toxicity", "safe"),
    "engine": ("engine", "motor"),
    "mascot": ("mascot",),
    "member": ("member", "members", "membership", "belongs? to the", "part of"),
    "team": ("team", "plays? for", "played for", "club"),
    "position": ("position", "role", "office", "job", "post", "occupation", "profession"),
    "citizenship": ("citizen", "citizenship", "nationality"),
    "religion": ("religion", "faith", "religious"),
    "genre": ("genre", "kind of music", "style of",
              "(?:kind|type|sort) of (?:film|movie|book|novel|music|show|series|game)"),
    "instrument": ("instrument", "plays the"),
    "sport": ("sport",),
    "education": ("studied", "educated", "alma mater", "university", "school", "graduated"),
    "employer": ("works for", "worked for", "employer", "employed by"),
    "record label": ("record label", "label", "signed to"),
    "broadcaster": ("network", "channel", "broadcast", "aired", "airs"),
    "continent": ("continent",),
    "country": ("country", "nation"),
}

_WORDS = re.compile(r"[^\W_][\w'’-]*")


@functools.cache
def _patterns() -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Every phrase with the relations it names, longest phrase first (so that "head
    coach" is read before "head")."""
    named: dict[str, set[str]] = {}
    for relation, phrases in RELATIONS.items():
        for phrase in phrases:
            named.setdefault(phrase, set()).add(relation)
    ordered = sorted(named, key=lambda p: (-len(p.replace("?", "")), p))
    return [(re.compile(rf"(?<![\w-]){p}(?![\w-])"), frozenset(named[p])) for p in ordered]


def _found(text: str) -> list[tuple[int, int, frozenset[str]]]:
    """(start, end, relations) of each relation phrase in lower-cased ``text``, no overlaps."""
    lower = text.lower().replace("’", "'")
    taken: list[tuple[int, int, frozenset[str]]] = []
    for pattern, names in _patterns():
        for m in pattern.finditer(lower):
            if all(m.end() <= a or m.start() >= b for a, b, _ in taken):
                taken.append((m.start(), m.end(), names))
    return sorted(taken)


# Titles before a name: "Senator Aldous Prynne" is Aldous Prynne.
TITLES = frozenset("""
mr mrs ms miss dr doctor prof professor sir dame lord lady senator governor president
king queen prince princess saint st rev reverend judge mayor captain general
""".split())  # noqa: SIM905  (a word list reads better as text)


def is_relation_word(word: str) -> bool:
    """Whether ``word`` alone names a relation ("CEO", "Wi-Fi") or is a title ("Senator"):
    capitalized, it is still not a name."""
    w = word.lower()
    return w in TITLES or bool(_found(w))


def phrases(text: str) -> list[tuple[int, int, frozenset[str]]]:
    """``(start, end, relations)`` of each relation phrase in ``text`` (character offsets),
    in order, none overlapping: the table's reading of a text."""
    return _found(text)


def relations(text: str) -> list[frozenset[str]]:
    """The relations ``text`` names: one set per phrase (the relations that phrase can
    mean), in order. [] when it names none this table knows."""
    return [names for _, _, names in _found(text)]


def canonical(text: str, like: str) -> str:
    """``text`` with each relation phrase said as ``like`` says that relation ("Name the
    CEO of Acme." like "Who is the chief executive of Acme?" → "Name the chief executive
    of Acme."). Phrases ``like`` has no relation in common with stay as they are."""
    theirs: dict[str, str] = {}
    for start, end, names in _found(like):
        for name in names:
            theirs.setdefault(name, like[start:end])  # as written there
    out, last = [], 0
    for start, end, names in _found(text):
        said = [theirs[n] for n in RELATIONS if n in names and n in theirs]
        if said and said[0].lower() != text[start:end].lower():  # the same words stay as is
            out += [text[last:start], said[0]]
            last = end
    return "".join(out) + text[last:]


# Words that ask for opposite facts while a sentence encoder scores them alike ("When does
# the season start?" and "… end?" 0.96; "check-in" and "check-out" 0.92): antonyms share
# their contexts, so embeddings put them close. Each pair is (one side, the other side).
CONTRASTS: tuple[tuple[str, str], ...] = (
    ("start|starts|started|starting|begin|begins|began|beginning", "end|ends|ended|ending|"
     "finish|finishes|finished|over"),
    ("open|opens|opened|opening", "close|closes|closed|closing"),
    ("in", "out"),  # in compounds only: check-in / check-out, log in / log out
    ("arrive|arrives|arrival|arrivals", "depart|departs|departure|departures|leave|leaves"),
    ("first|earliest", "last|latest|final"),
    ("min|minimum|lowest|least", "max|maximum|highest|most"),
    ("oldest", "youngest|newest"),
    ("largest|biggest", "smallest"),
    ("longest", "shortest"),
    ("buy|buys|bought|purchase", "sell|sells|sold|sale"),
    ("import|imports|imported", "export|exports|exported"),
    ("inbound|incoming", "outbound|outgoing"),
    ("entry|entrance", "exit"),
    ("men's|men|male", "women's|women|female"),
    ("upper", "lower"),
)


@functools.cache
def _contrast_patterns() -> list[tuple[re.Pattern[str], re.Pattern[str]]]:
    def side(words: str) -> re.Pattern[str]:
        if words in ("in", "out"):  # a particle: only as part of a verb or compound
            return re.compile(rf"(?:\w-{words}\b|\b(?:check|checking|log|logging|sign|"
                              rf"signing|clock|clocking|move|moving) {words}\b)")
        return re.compile(rf"(?<![\w-])(?:{words})(?![\w-])")
    return [(side(a), side(b)) for a, b in CONTRASTS]


def contrasted(a: str, b: str) -> bool:
    """Whether texts ``a`` and ``b`` ask opposite things: one says a side of a contrast
    pair ("start") that the other does not, and the other says the opposite side ("end")
    that the first does not."""
    la, lb = a.lower().replace("’", "'"), b.lower().replace("’", "'")
    for one, other in _contrast_patterns():
        for x, y in ((one, other), (other, one)):
            if x.search(la) and not x.search(lb) and y.search(lb) and not y.search(la):
                return True
    return False


def disjoint(a: list[frozenset[str]], b: list[frozenset[str]]) -> bool:
    """Whether two questions that both name relations name none in common."""
    if not a or not b:
        return False
    return not (frozenset().union(*a) & frozenset().union(*b))


# What kind of answer a question asks for, from its question words.
_ASKS = (
    ("time", r"\bwhen\b|\b(?:what|which) (?:year|date|day|month|century|time)\b"),
    ("place", r"\bwhere\b|\b(?:what|which) (?:city|town|country|place|location|"
              r"region|province|state|municipality|continent|area)\b"),
    ("amount", r"\bhow (?:many|much|long|far|fast|big|old|tall|high|deep|heavy|large)\b"),
    ("person", r"\bwho\b|\bwhom\b|\b(?:which|what) (?:person|people|man|woman)\b"),
)


def asks_for(text: str) -> frozenset[str]:
    """The kinds of answer ``text`` asks for (time, place, amount, person); empty when its
    words do not say ("What is …", "Name …")."""
    lower = text.lower()
    return frozenset(kind for kind, pattern in _ASKS if re.search(pattern, lower))
