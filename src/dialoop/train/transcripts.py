"""Stored sessions → training dialogues, the JSONL that ``dialoop train sft`` reads.

    dialoop sessions export trip --format openai -o trip.jsonl
    dialoop sessions export --all --format sharegpt -o mine.jsonl

Each session is one line, in OpenAI's fine-tuning format or ShareGPT's:

    {"messages": [{"role": "system", "content": "…"}, {"role": "user", "content": "…"},
                  {"role": "assistant", "content": "…"}]}
    {"conversations": [{"from": "system", "value": "…"}, {"from": "human", "value": "…"},
                       {"from": "gpt", "value": "…"}]}

What users said about the answers decides what is learned from:

- a **correction** of an answer replaces it (the latest one; if its lesson was superseded
  by a newer lesson, the newer answer; if the lesson was forgotten, the correction is
  withdrawn and the answer is judged by its rating alone);
- an answer whose latest **rating** is bad (-1) and that has no correction is dropped
  together with the question it answered (``bad="drop"``), kept (``"keep"``), or kept
  with ``"weight": 0`` (``"mark"``: OpenAI's per-message weight, which the loader of
  :mod:`dialoop.train.data` honours: context, not a target);
- a **cancelled** answer (stopped while it was written) is dropped with its question,
  and so is a question that never got an answer.

A session with no answer left to learn from is not written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from dialoop.errors import InvalidInputError
from dialoop.store import Database
from dialoop.store.models import ChatSession, Feedback, Lesson, Turn

__all__ = ["BadAnswers", "TrainingFormat", "session_messages", "training_records"]

log = logging.getLogger(__name__)

TrainingFormat = Literal["openai", "sharegpt"]
BadAnswers = Literal["drop", "keep", "mark"]
_SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}
_MAX_SUPERSEDED = 1_000  # a chain of lessons replacing each other longer than this is broken


@dataclass(frozen=True)
class _Verdict:
    """What the user said about one answer: its replacement, and its latest rating."""

    correction: str | None = None
    rating: int | None = None


def training_records(
    db: Database, sessions: Sequence[ChatSession], *, fmt: TrainingFormat,
    bad: BadAnswers = "drop",
) -> Iterator[dict[str, Any]]:
    """One record per session that has an answer left to learn from."""
    if fmt not in ("openai", "sharegpt"):
        raise InvalidInputError(f"Unknown training format {fmt!r}: use openai or sharegpt.")
    for session in sessions:
        messages = session_messages(db, session, bad=bad)
        if not messages:
            log.info("session %s has no answer to learn from: left out", session.id)
            continue
        yield _record(messages, fmt)


def session_messages(db: Database, session: ChatSession, *, bad: BadAnswers = "drop"
                     ) -> list[dict[str, Any]]:
    """The session as chat messages to learn from (see the module's rules); [] if no
    answer is left."""
    if bad not in ("drop", "keep", "mark"):
        raise InvalidInputError(f"Bad answers are dropped, kept or marked, not {bad!r}.")
    with db.read() as s:
        turns = list(s.scalars(sa.select(Turn).where(Turn.session_id == session.id)
                               .order_by(Turn.position)))
    exchanges = _exchanges(turns)
    verdicts = _verdicts(db, [answer.id for _, answer in exchanges])
    messages: list[dict[str, Any]] = []
    if session.system_prompt:
        messages.append({"role": "system", "content": session.system_prompt})
    for question, answer in exchanges:
        reply = _reply(answer, verdicts.get(answer.id, _Verdict()), bad)
        if reply is not None:
            messages += [{"role": "user", "content": question.content}, reply]
    learnable = any(m["role"] == "assistant" and m.get("weight", 1) for m in messages)
    return messages if learnable else []


def _exchanges(turns: Sequence[Turn]) -> list[tuple[Turn, Turn]]:
    """Each question with the answer that followed it (a question left unanswered goes)."""
    return [(prev, turn) for prev, turn in zip(turns, turns[1:], strict=False)
            if prev.role == "user" and turn.role == "assistant"]


def _reply(answer: Turn, verdict: _Verdict, bad: BadAnswers) -> dict[str, Any] | None:
    """The assistant message to learn from for ``answer``, or None to leave the exchange out."""
    if verdict.correction is not None:
        return {"role": "assistant", "content": verdict.correction}
    if answer.status == "cancelled" or not answer.content.strip():
        return None
    if verdict.rating == -1 and bad != "keep":
        if bad == "drop":
            return None
        return {"role": "assistant", "content": answer.content, "weight": 0}
    return {"role": "assistant", "content": answer.content}


def _verdicts(db: Database, turn_ids: list[int]) -> dict[int, _Verdict]:
    """Per answer: the correction that stands (if any) and the latest rating."""
    if not turn_ids:
        return {}
    corrections: dict[int, int | None] = {}  # turn → lesson of its latest correction
    texts: dict[int, str | None] = {}
    ratings: dict[int, int] = {}
    with db.read() as s:
        rows = s.scalars(sa.select(Feedback).where(
            Feedback.turn_id.in_(turn_ids), Feedback.kind.in_(("rating", "correction")))
            .order_by(Feedback.id))
        for row in rows:
            assert row.turn_id is not None
            if row.kind == "rating" and row.rating is not None:
                ratings[row.turn_id] = row.rating
            elif row.kind == "correction":
                corrections[row.turn_id], texts[row.turn_id] = row.lesson_id, row.answer
        standing = {turn: _standing_answer(s, lesson, texts[turn])
                    for turn, lesson in corrections.items()}
    return {turn: _Verdict(standing.get(turn), ratings.get(turn))
            for turn in set(corrections) | set(ratings)}


def _standing_answer(s: Any, lesson_id: int | None, text: str | None) -> str | None:
    """The answer a correction's lesson stands for now: its own, a newer lesson's that
    superseded it, or None if it was forgotten."""
    if lesson_id is None:
        return text
    for _ in range(_MAX_SUPERSEDED):
        lesson = s.get(Lesson, lesson_id)
        if lesson is None or lesson.status == "forgotten":
            return None
        if lesson.status != "superseded" or lesson.superseded_by is None:
            return lesson.answer
        lesson_id = lesson.superseded_by
    return None


def _record(messages: list[dict[str, Any]], fmt: TrainingFormat) -> dict[str, Any]:
    if fmt == "openai":
        return {"messages": messages}
    return {"conversations": [
        {"from": _SHAREGPT_FROM[m["role"]], "value": m["content"],
         **({"weight": m["weight"]} if "weight" in m else {})}
        for m in messages]}
