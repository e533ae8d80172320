"""Words as the linker and the relation matcher compare them: tokens, stems, stop words.

Names are stored in the same normalized form (``norm``) that question n-grams are
turned into, so "the Aurora lamps" finds the entity labelled "Aurora Lamp" with one
indexed lookup.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import Stemmer

__all__ = ["QUESTION_WORDS", "STOPWORDS", "Token", "joint", "norm", "readable", "root",
           "split_name", "stem", "tokenize", "verb_forms", "verb_roots"]

_WORD = re.compile(r"[^\W_]+(?:[.'’\-][^\W_]+)*", re.UNICODE)

# Function words: never a relation mention on their own, never the start of a name match.
_STOP_TEXT = """
a an the of in on at to for from by with about as into onto over under and or nor but not no
is are was were be been being am do does did done has have had having will would shall should
can could may might must it its it's this that these those there here he she they them his her
their hers theirs him we us our you your yours i me my mine what which who whom whose when where
why how any some all each every much many more most less least than then so too very just also
s please tell me give show list name find know let
"""
STOPWORDS = frozenset(_STOP_TEXT.split())

QUESTION_WORDS = frozenset(["what", "which", "who", "whom", "whose", "when", "where", "why", "how"])


@dataclass(frozen=True)
class Token:
    text: str  # as written (possessive 's removed)
    lower: str
    stem: str
    start: int  # character offsets in the question
    end: int

    @property
    def stop(self) -> bool:
        return self.lower in STOPWORDS


@functools.cache
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def stem(word: str) -> str:
    return _stemmer().stemWord(word)


def tokenize(text: str) -> list[Token]:
    """Word tokens with offsets; "Herbert's" becomes "Herbert"."""
    text = unicodedata.normalize("NFKC", text)
    tokens = []
    for m in _WORD.finditer(text):
        word, end = m.group(), m.end()
        for suffix in ("'s", "’s"):
            if word.lower().endswith(suffix):
                word, end = word[: -len(suffix)], end - len(suffix)
        word = word.strip(".'’-")
        if not word:
            continue
        lower = word.lower()
        tokens.append(Token(word, lower, stem(lower), m.start(), end))
    return tokens


def norm(text: str) -> str:
    """The lookup form of a name or phrase: lowercase stems joined by single spaces."""
    return " ".join(t.stem for t in tokenize(text))


# English verbs whose past forms no stemmer relates to the verb (morphology, not aliases).
_IRREGULAR = {"wrote": "write", "written": "write", "made": "make", "sold": "sell",
              "bought": "buy", "led": "lead", "built": "build", "ran": "run", "took": "take",
              "taken": "take", "gave": "give", "given": "give", "held": "hold", "won": "win",
              "sang": "sing", "sung": "sing", "drew": "draw", "drawn": "draw", "shot": "shoot",
              "played": "play", "began": "begin", "begun": "begin", "grew": "grow",
              "grown": "grow", "born": "birth", "bore": "birth"}
# Suffixes that make a noun of a verb ("actor", "director", "writer", "location").
_DERIVED = ("ation", "ion", "ment", "or", "er")


@functools.cache
def root(word: str) -> str:
    """The derivational root the relation matcher compares: "actors", "acted" and "act"
    → "act"; "wrote", "writer" → "writ"; "headquarters", "headquartered" → "headquart".
    """
    lower = word.lower()
    s = stem(_IRREGULAR.get(lower, lower))
    for suffix in _DERIVED:
        if s.endswith(suffix) and len(s) - len(suffix) >= 3:
            s = s[: -len(suffix)]
            break
    return s.rstrip("e") if len(s) > 3 else s


# Latin-derived nouns keep the verb's past participle stem ("product" of "produce",
# "composition" of "compose", "description" of "describe"): (noun root ending, verb root
# ending). Morphology, like _IRREGULAR: it says which verb a noun comes from, not what
# any word means.
_SUPINE = (("uct", "uc"), ("osit", "os"), ("ipt", "ib"), ("ept", "eiv"), ("ens", "end"))
# What a verb root takes to make its forms ("produc" → "produces", "producer").
_VERB_ENDINGS = ("", "e", "s", "es", "ed", "er", "ers", "or", "ors", "ing")


@functools.cache
def verb_roots(word: str) -> frozenset[str]:
    """The roots of the verbs a noun may be read as: its own ("design" → "design") and,
    for a Latin-derived noun, the verb it comes from ("product" → "produc", the root of
    "produce", "produced", "producer"). A relation named by a noun ("product": company →
    item) is asked about with its verb ("who produces X") or agent noun ("producer")."""
    r = root(word)
    out = {r}
    for noun, verb in _SUPINE:
        if r.endswith(noun) and len(r) - len(noun) >= 3:
            out.add(r[: -len(noun)] + verb)
    return frozenset(out)


def verb_forms(verb_root: str) -> list[str]:
    """Words whose root is ``verb_root`` made by adding a verb's or an agent noun's endings
    ("produc" → "produce", "produces", "produced", "producer", "producing", …): the
    forms to look up in a table of words."""
    return [w for w in (verb_root + e for e in _VERB_ENDINGS) if root(w) == verb_root]


def joint(word: str) -> tuple[str, bool] | None:
    """A word with the prefix "co-" (something done together: "co-starred", "co-authors")
    as (the word after it, whether the hyphen was written); None without the prefix.
    Written together ("costarred", "coauthor"), the rest is only a candidate: the caller
    takes it when the whole word means nothing to it and the rest does."""
    lower = word.lower()
    if lower.startswith("co-") and len(lower) >= 6:
        return word[3:], True
    if lower.startswith("co") and len(lower) >= 6 and lower[2] not in "-'’":
        return word[2:], False
    return None


def split_name(name: str) -> str:
    """A relation's key as words: "headquarteredIn" → "headquartered in",
    "starred_actors" → "starred actors", "HTTPStatus" → "HTTP status" (acronyms kept)."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    words = [w for w in re.split(r"[_\-\s.]+", text) if w]
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)


def readable(name: str) -> str:
    """``name`` as words if it is written as one identifier ("headquarteredIn",
    "starred_actors"), else unchanged ("Price", "made by")."""
    words = split_name(name)
    return words if words.count(" ") > name.count(" ") else name
