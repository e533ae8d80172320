"""Sessions and their turns, stored durably, always scoped to one user.

Every method takes the acting user and only ever sees that user's sessions: a
session of another user is reported as not found, never as forbidden (which
would tell that it exists).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.store import Database
from dialoop.store.models import (
    MAX_ID,
    ChatSession,
    Turn,
    check_session_name,
    check_text,
    utcnow,
)

__all__ = ["ChatSession", "SessionSummary", "Sessions", "Turn", "check_session_name"]

TITLE_LENGTH = 80


@dataclass(frozen=True)
class SessionSummary:
    session: ChatSession
    turns: int


class Sessions:
    """Create, find, list, extend, export and delete sessions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        user: str,
        *,
        name: str | None = None,
        system_prompt: str | None = None,
        model: str | None = None,
    ) -> ChatSession:
        if name is not None:
            name = check_session_name(name)
        if system_prompt is not None:
            check_text(system_prompt, "The system prompt")
        with self.db.write() as s:
            if name is not None and _by_name(s, user, name) is not None:
                raise InvalidInputError(
                    f"A session named {name!r} already exists: continue it with "
                    f"--session {name}, or pick another name."
                )
            session = ChatSession(user_id=user, name=name, system_prompt=system_prompt,
                                  model=model, meta={})
            s.add(session)
        return session

    def get(self, ref: str, user: str) -> ChatSession:
        session = self.find(ref, user)
        if session is None:
            raise NotFoundError(
                f"No session {ref!r}: `dialoop sessions list` shows the ones you have."
            )
        return session

    def find(self, ref: str, user: str) -> ChatSession | None:
        """A session by name, or else by id, among ``user``'s sessions."""
        with self.db.read() as s:
            return _by_name(s, user, ref) or s.scalar(
                sa.select(ChatSession).where(ChatSession.id == ref, ChatSession.user_id == user)
            )

    def open(self, ref: str | None, user: str, **create: Any) -> ChatSession:
        """The session named ``ref`` (created if new), or a new unnamed session."""
        if ref is None:
            return self.create(user, **create)
        return self.find(ref, user) or self.create(user, name=ref, **create)

    def list(self, user: str, *, limit: int = 50) -> list[SessionSummary]:
        count = (
            sa.select(sa.func.count(Turn.id)).where(Turn.session_id == ChatSession.id)
        ).scalar_subquery()
        with self.db.read() as s:
            rows = s.execute(
                sa.select(ChatSession, count)
                .where(ChatSession.user_id == user)
                .order_by(ChatSession.updated_at.desc())
                .limit(limit)
            ).all()
        return [SessionSummary(session, n) for session, n in rows]

    def of_user(self, user: str) -> list[ChatSession]:
        """Every session of ``user``, oldest first."""
        with self.db.read() as s:
            return list(s.scalars(sa.select(ChatSession).where(ChatSession.user_id == user)
                                  .order_by(ChatSession.created_at, ChatSession.id)))

    def turns(self, session: ChatSession) -> list[Turn]:
        with self.db.read() as s:
            return list(
                s.scalars(
                    sa.select(Turn).where(Turn.session_id == session.id).order_by(Turn.position)
                )
            )

    def turn(self, turn_id: int, user: str) -> Turn:
        """Turn ``turn_id`` if it is in one of ``user``'s sessions (else: not found)."""
        if not 0 < turn_id <= MAX_ID:  # no row has it, and SQLite cannot even look it up
            raise NotFoundError(f"No turn {turn_id} in your sessions.")
        with self.db.read() as s:
            turn = s.scalar(
                sa.select(Turn).join(ChatSession, ChatSession.id == Turn.session_id)
                .where(Turn.id == turn_id, ChatSession.user_id == user)
            )
        if turn is None:
            raise NotFoundError(f"No turn {turn_id} in your sessions.")
        return turn

    def add_turn(self, session: ChatSession, role: str, content: str, **fields: Any) -> Turn:
        """Append a turn and commit it: when this returns, the turn is on disk."""
        return self.add_turns(session, [(role, content)], **fields)[0]

    def add_turns(
        self, session: ChatSession, messages: Iterable[tuple[str, str]], *,
        only_if_empty: bool = False, traces: Sequence[dict[str, Any] | None] | None = None,
        **fields: Any,
    ) -> list[Turn]:
        """Append (role, content) messages in ONE transaction: all are stored, or none.

        A client's history seeds a new session this way, so a crash (kill -9) in the
        middle leaves no half history behind, and a retry finds the session still empty
        and seeds it whole. With ``only_if_empty`` nothing is added (and [] returned)
        when the session already has turns: checked inside the same transaction, so two
        requests seeding one session cannot both do it. ``fields`` go to every turn;
        ``traces``, if given, is one trace per message (a tool result names its call).
        """
        pending = [(_valid_role(role), check_text(content, "A message"))
                   for role, content in messages]  # refuse bad input before writing
        if traces is not None and len(traces) != len(pending):
            raise ValueError("add_turns: one trace per message")
        turns: list[Turn] = []
        with self.db.write() as s:
            last = s.scalar(
                sa.select(sa.func.max(Turn.position)).where(Turn.session_id == session.id)
            )
            if only_if_empty and last is not None:
                return []
            own = traces if traces is not None else [None] * len(pending)
            for i, ((role, content), trace) in enumerate(zip(pending, own, strict=True),
                                                       start=(last or 0) + 1):
                extra = fields if trace is None else {**fields, "trace": trace}
                turns.append(Turn(session_id=session.id, position=i, role=role,
                                  content=content, **extra))
            s.add_all(turns)
            values: dict[str, Any] = {"updated_at": utcnow()}
            first_question = next((c for r, c in pending if r == "user"), None)
            if first_question is not None and not session.title:
                values["title"] = _title(first_question)
            s.execute(sa.update(ChatSession).where(ChatSession.id == session.id).values(values))
        if "title" in values:
            session.title = values["title"]
        return turns

    def set_status(self, session: ChatSession, status: str) -> None:
        """Mark a session: "active", or "handoff" (waiting for a person to take over)."""
        with self.db.write() as s:
            s.execute(sa.update(ChatSession).where(ChatSession.id == session.id)
                      .values(status=status, updated_at=utcnow()))
        session.status = status

    def delete(self, ref: str, user: str) -> ChatSession:
        session = self.get(ref, user)
        with self.db.write() as s:
            s.execute(sa.delete(ChatSession).where(ChatSession.id == session.id))
        return session

    def export(self, ref: str, user: str) -> dict[str, Any]:
        """The session and all its turns as plain JSON-able data."""
        session = self.get(ref, user)
        return {
            "id": session.id,
            "name": session.name,
            "title": session.title,
            "user": session.user_id,
            "system_prompt": session.system_prompt,
            "model": session.model,
            "created_at": session.created_at.isoformat(),
            "turns": [turn_to_dict(t) for t in self.turns(session)],
        }


def turn_to_dict(turn: Turn) -> dict[str, Any]:
    return {
        "id": turn.id,
        "position": turn.position,
        "role": turn.role,
        "content": turn.content,
        "status": turn.status,
        "created_at": turn.created_at.isoformat(),
        "model": turn.model,
        "adapter": turn.adapter,
        "prompt_tokens": turn.prompt_tokens,
        "completion_tokens": turn.completion_tokens,
        "cached_tokens": turn.cached_tokens,
        "seconds": turn.seconds,
        "trace": turn.trace,
    }


def answered(turns: Sequence[Turn]) -> list[Turn]:
    """The turns that belong in a prompt: each input with the answer that followed it.

    An input is a user turn, or the run of tool results that answered the assistant's
    tool calls. An input left without an answer (the process died, or generation
    failed) is kept in the store but not shown to the model, so the history stays
    well-formed.
    """
    kept: list[Turn] = []
    pending: list[Turn] = []
    for turn in turns:
        if turn.role == "user":
            pending = [turn]
        elif turn.role == "tool":
            pending = [*(t for t in pending if t.role == "tool"), turn]
        elif pending:
            kept += [*pending, turn]
            pending = []
    return kept


ROLES = ("user", "assistant", "tool")


def _valid_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInputError(f"A turn's role is 'user', 'assistant' or 'tool', not {role!r}.")
    return role


def _by_name(s: Any, user: str, name: str) -> ChatSession | None:
    return s.scalar(
        sa.select(ChatSession).where(ChatSession.user_id == user, ChatSession.name == name)
    )


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1] + "…"
