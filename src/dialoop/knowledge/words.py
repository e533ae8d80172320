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

__all__ = ["QUESTION_WORDS", "STOPWORDS", "Token", "norm", "readable", "root", "split_name",
           "stem", "tokenize"]

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
