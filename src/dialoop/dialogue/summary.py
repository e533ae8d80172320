"""Summaries of what falls out of the context window, and of whole sessions.

With ``context_overflow = "summarize"`` the exchanges that :mod:`dialoop.dialogue.context`
drops are not lost: they are summarised, and the summary goes into the system message as
a numbered evidence item labelled "Summary of the earlier conversation (turns 1–12)" —
never into a user message, so the model is never told the user said it. The turn's trace
names the summary (``context.summary``: its id, the turns it covers, its text).

A summary is stored per session, keyed by how many messages of the prompt history it
covers. Context drops messages in whole blocks, so a summary is made once per dropped
block and read back on every later turn: the system message (and with it the KV-cache
prefix) changes only when a block drops. Summaries are incremental: the newest stored
summary of the same kind plus the messages it does not cover make the next one.

Two summarisers:

- ``model``: the engine itself, greedy, with a short instruction and a bounded length.
- ``extractive``: no model. The user's sentences that state facts (names, numbers, order
  ids, dates, places, preferences) ranked by a salience score, kept verbatim, as many as
  fit. Questions and chit-chat score low.

Which one keeps more facts with the bundled 135M model is measured by
``benchmarks/bench_summary.py`` (docs/summaries.md); the defaults follow that figure.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import sqlalchemy as sa

from dialoop.dialogue.session import ChatSession, Sessions, answered
from dialoop.engine import Engine, GenerationParams, Message
from dialoop.errors import InvalidInputError
from dialoop.evidence import Evidence
from dialoop.store import Database
from dialoop.store.summaries import ContextSummary

__all__ = [
    "SUMMARY_TOKENS", "ExtractiveSummariser", "ModelSummariser", "Summariser",
    "SummariserKind", "Summaries", "Summary", "overflow_summaries", "summariser",
    "summarize_session",
]

SummariserKind = Literal["model", "extractive"]
SUMMARY_TOKENS = 160  # the longest summary, whatever room the window would give it
_MESSAGE_CHARS = 600  # each message is shown to the model summariser at most this long


@dataclass(frozen=True)
class Summary:
    """A stored summary of the first ``covers`` messages of a session's prompt history."""

    id: int
    session_id: str
    covers: int  # messages of the history (user, assistant, tool) it stands for
    turns: int  # user turns among them: it covers turns 1..turns
    kind: str  # "model" | "extractive"
    text: str
    seconds: float  # how long it took to make

    @property
    def label(self) -> str:
        return f"Summary of the earlier conversation (turns 1–{self.turns})"

    def evidence(self) -> Evidence:
        """The summary as the system message shows it: a numbered item, labelled."""
        return Evidence("summary", f"{self.label}:\n{self.text}", f"summary:{self.id}")

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "source": f"summary:{self.id}", "kind": self.kind,
                "turns": [1, self.turns], "messages": self.covers, "text": self.text,
                "seconds": round(self.seconds, 3)}


class Summariser(Protocol):
    """Makes a summary of ``messages``, continuing ``previous`` (None: the first one)."""

    kind: SummariserKind

    def __call__(self, previous: str | None, messages: Sequence[Message], limit: int) -> str:
        """At most ``limit`` tokens (of the engine's tokenizer)."""
        ...


class ModelSummariser:
    """The engine summarises, greedily, in at most ``limit`` tokens."""

    kind: SummariserKind = "model"

    def __init__(self, engine: Engine, *, cache_scope: str | None = None) -> None:
        self.engine = engine
        self.cache_scope = cache_scope

    def __call__(self, previous: str | None, messages: Sequence[Message], limit: int) -> str:
        # The wording that kept most with the 135M model among the few tried (it tends to
        # continue a transcript instead of summarising it, or to invent a story around it).
        lines = [f"{m['role'].capitalize()}: {_clip(m['content'])}" for m in messages]
        if previous:
            lines.insert(0, f"(Summary of what was said before: {previous})")
        asked: list[Message] = [
            {"role": "system", "content": "You are a helpful assistant that summarizes "
                                          "conversations."},
            {"role": "user", "content": self.engine.escape(
                "Summarize this conversation in two or three sentences. Mention the user's "
                "name, numbers, places, dates and preferences.\n\n" + "\n".join(lines))},
        ]
        params = GenerationParams(temperature=0.0, max_tokens=limit, repeat_penalty=1.1)
        text = "".join(c.text for c in self.engine.stream(asked, params,
                                                           cache_scope=self.cache_scope))
        return text.strip() or (previous or "")


class ExtractiveSummariser:
    """The user's most salient sentences, verbatim, as many as fit in ``limit`` tokens.

    ``count`` counts tokens (an engine's ``count_tokens``); without an engine (the CLI
    loads no model for this kind) it estimates one token per three characters (English
    prose is about four per token with the bundled tokenizer; digits are fewer, so a
    summary full of numbers may be somewhat longer than ``limit`` by the model's count).
    """

    kind: SummariserKind = "extractive"

    def __init__(self, count: Callable[[str], int] | None = None) -> None:
        self.count = count or _rough_tokens

    def __call__(self, previous: str | None, messages: Sequence[Message], limit: int) -> str:
        candidates = [s.removeprefix(_SAID) for s in (previous or "").splitlines() if s]
        candidates += [s for m in messages if m["role"] == "user"
                       for s in _sentences(m["content"])]
        scored = [(salience(s), i, s) for i, s in enumerate(dict.fromkeys(candidates))]
        chosen: list[tuple[int, str]] = []
        used = 0
        for score, i, sentence in sorted(scored, key=lambda x: (-x[0], x[1])):
            if score < _SALIENT:
                break
            line = _SAID + sentence
            cost = self.count(line) + 1
            if used + cost <= limit:
                chosen.append((i, line))
                used += cost
        return "\n".join(line for _, line in sorted(chosen))


def summariser(kind: SummariserKind, engine: Engine, *,
               cache_scope: str | None = None) -> Summariser:
    """The summariser of ``kind`` on ``engine`` (the setting ``context_summarizer``)."""
    if kind == "model":
        return ModelSummariser(engine, cache_scope=cache_scope)
    return ExtractiveSummariser(engine.count_tokens)


# -- salience ---------------------------------------------------------------------------

_SAID = "User: "
_SALIENT = 3  # the score a sentence needs to be kept
_DATE_WORD = re.compile(  # capitalised, so that "may" the verb is not a month
    r"\b(January|February|March|April|May|June|July|August|September|October|November|"
    r"December|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b")
_FIRST_PERSON = re.compile(
    r"\b(my|mine|i'm|i am|i live|i was|i have|i've|i prefer|i like|i love|i hate|i need|"
    r"i want|call me|we|our)\b", re.IGNORECASE)
_PREFERENCE = re.compile(
    r"\b(prefer|favou?rite|like|love|hate|allergic|vegetarian|vegan|always|never|rather)\b",
    re.IGNORECASE)
_NUMBER = re.compile(r"\d")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z][\w'-]*")


def salience(sentence: str) -> int:
    """How likely ``sentence`` states a fact worth keeping (names, numbers, dates, places,
    preferences said in the first person); questions and short remarks score low."""
    words = _WORD.findall(sentence)
    score = 0
    if _NUMBER.search(sentence):
        score += 3  # order ids, amounts, dates, phone numbers
    if _DATE_WORD.search(sentence):
        score += 2
    if any(w[0].isupper() and w not in ("I", "I'm", "I've") for w in words[1:]):
        score += 2  # a proper name past the first word: a person, a city, a product
    if _FIRST_PERSON.search(sentence):
        score += 2
    if _PREFERENCE.search(sentence):
        score += 1
    if sentence.rstrip().endswith("?"):
        score -= 2
    if len(words) < 3:
        score -= 2
    return score


def _sentences(text: str) -> list[str]:
    return [s.strip() for line in text.splitlines() for s in _SENTENCE.split(line) if s.strip()]


def _rough_tokens(text: str) -> int:
    return len(text) // 3 + 1


def _clip(text: str) -> str:
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + " …"


# -- storage ------------------------------------------------------------------------------

class Summaries:
    """The stored summaries of sessions (the table ``context_summaries``, m011)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, session_id: str, covers: int, kind: str) -> Summary | None:
        with self.db.read() as s:
            row = s.scalar(sa.select(ContextSummary).where(
                ContextSummary.session_id == session_id, ContextSummary.kind == kind,
                ContextSummary.covers == covers))
        return _summary(row) if row is not None else None

    def latest(self, session_id: str, kind: str | None = None, *,
               below: int | None = None) -> Summary | None:
        """The stored summary covering the most messages (fewer than ``below``, if given)."""
        query = sa.select(ContextSummary).where(ContextSummary.session_id == session_id)
        if kind is not None:
            query = query.where(ContextSummary.kind == kind)
        if below is not None:
            query = query.where(ContextSummary.covers < below)
        with self.db.read() as s:
            row = s.scalar(query.order_by(ContextSummary.covers.desc(),
                                          ContextSummary.id.desc()).limit(1))
        return _summary(row) if row is not None else None

    def make(self, session_id: str, history: Sequence[Message], covers: int,
             summarise: Summariser, limit: int) -> Summary:
        """The summary of ``history[:covers]``: stored, or made now from the newest stored
        one before it and the messages it leaves out, and stored."""
        found = self.get(session_id, covers, summarise.kind)
        if found is not None:
            return found
        before = self.latest(session_id, summarise.kind, below=covers)
        start = before.covers if before is not None else 0
        started = time.perf_counter()
        text = summarise(before.text if before else None, history[start:covers], limit)
        seconds = time.perf_counter() - started
        turns = sum(1 for m in history[:covers] if m["role"] == "user")
        with self.db.write() as s:  # another process may have made it meanwhile: keep one
            row = s.scalar(sa.select(ContextSummary).where(
                ContextSummary.session_id == session_id, ContextSummary.kind == summarise.kind,
                ContextSummary.covers == covers))
            if row is None:
                row = ContextSummary(session_id=session_id, covers=covers, turns=turns,
                                     kind=summarise.kind, text=text, seconds=seconds)
                s.add(row)
                s.flush()
            made = _summary(row)
        return made


def overflow_summaries(
    db: Database, summarise: Summariser, session_id: str, history: Sequence[Message],
) -> Callable[[int, int], Summary]:
    """The ``summarize`` argument of :func:`~dialoop.dialogue.context.build_prompt` for a
    session whose prompt history is ``history``: the first n messages, summarised once."""
    store = Summaries(db)

    def summarize(covers: int, limit: int) -> Summary:
        return store.make(session_id, history, covers, summarise, min(limit, SUMMARY_TOKENS))

    return summarize


def summarize_session(db: Database, session: ChatSession, summarise: Summariser, *,
                      limit: int = SUMMARY_TOKENS) -> Summary:
    """The summary of the whole of ``session`` so far (``dialoop sessions summarize``, the
    API), stored like the others: made once, from the newest stored one onwards."""
    history: list[Message] = [{"role": t.role, "content": t.content}
                              for t in answered(Sessions(db).turns(session))]
    if not history:
        raise InvalidInputError(f"Session {session.label} has no answered turn yet: "
                                "there is nothing to summarise.")
    return Summaries(db).make(session.id, history, len(history), summarise, limit)


def _summary(row: ContextSummary) -> Summary:
    return Summary(row.id, row.session_id, row.covers, row.turns, row.kind, row.text,
                   row.seconds)
