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

__all__ = ["QUESTION_WORDS", "STOPWORDS", "Token", "norm", "stem", "tokenize"]

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
