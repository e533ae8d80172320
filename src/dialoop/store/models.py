"""The tables, as SQLAlchemy ORM classes.

The schema itself is created by the numbered migrations in
:mod:`dialoop.store.migrations`; a test checks that the two agree.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from dialoop.errors import InvalidInputError

__all__ = [
    "MAX_ID",
    "MAX_SESSION_NAME",
    "Account",
    "AdapterHead",
    "AdapterVersion",
    "ApiKey",
    "Base",
    "ChatSession",
    "Feedback",
    "LearnRun",
    "Lesson",
    "Turn",
    "UTCDateTime",
    "check_session_name",
    "check_text",
    "new_id",
    "utcnow",
]

MAX_ID = 2**63 - 1
"""The largest integer id a row can have (SQLite INTEGER and PostgreSQL BIGINT are 64-bit
signed); a larger one cannot name anything, and SQLite would fail to even look it up."""
MAX_SESSION_NAME = 200  # the width of sessions.name
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters a session name may not have: controls (C0, DEL, C1: CR, LF and NUL would
# break a response header or a log line), surrogates, and line/paragraph separators.
# Format characters stay allowed: the zero-width joiner is part of many emoji.
_NOT_IN_NAMES = frozenset(("Cc", "Cs", "Zl", "Zp"))


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_text(text: str, what: str = "The text") -> str:
    """``text`` unchanged, if it can be stored as UTF-8; else :class:`InvalidInputError`.

    A JSON string may spell half of a UTF-16 surrogate pair (``"\\ud800"``); Python
    decodes it to a lone surrogate, which no UTF-8 database column can hold. Checking
    before writing turns what would be a failure mid-request into a clear refusal.
    """
    if (bad := _LONE_SURROGATE.search(text)) is not None:
        raise InvalidInputError(
            f"{what} contains a lone surrogate ({bad.group()!a} at character {bad.start()}): "
            "half of a UTF-16 pair is not a character. Send valid UTF-8 text."
        )
    return text


def check_session_name(name: str) -> str:
    """``name`` without surrounding spaces, if it can name a session; else
    :class:`InvalidInputError`.

    Any language and emoji are fine ("日本の旅"); control characters are not, nor more
    than :data:`MAX_SESSION_NAME` characters.
    """
    name = name.strip()
    if not name or len(name) > MAX_SESSION_NAME:
        raise InvalidInputError(
            f"A session name has 1 to {MAX_SESSION_NAME} characters, not {len(name):,}."
        )
    for i, char in enumerate(name):
        if unicodedata.category(char) in _NOT_IN_NAMES:
            raise InvalidInputError(
                f"A session name cannot contain control characters such as line breaks or "
                f"NUL: {char!a} at character {i}. Pick a name without it."
            )
    return name


def new_id() -> str:
    """A short random id: 16 hex characters."""
    return secrets.token_hex(8)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, also on SQLite (which drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use dialoop.store.models.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: sa.JSON, float: sa.Float}


class ChatSession(Base):
    """A conversation of one user with the assistant."""

    __tablename__ = "sessions"
    __table_args__ = (sa.UniqueConstraint("user_id", "name", name="uq_sessions_user_name"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    title: Mapped[str | None] = mapped_column(sa.String(200))
    system_prompt: Mapped[str | None] = mapped_column(sa.Text)
    model: Mapped[str | None] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)

    @property
    def label(self) -> str:
        return self.name or self.id

    @validates("name")
    def _valid_name(self, key: str, name: str | None) -> str | None:
        # The last line of defence: callers check names earlier, before writing anything.
        return None if name is None else check_session_name(name)

    @validates("system_prompt")
    def _valid_prompt(self, key: str, prompt: str | None) -> str | None:
        return None if prompt is None else check_text(prompt, "The system prompt")


class Turn(Base):
    """One message in a session: the user's, or the assistant's answer with its costs."""

    __tablename__ = "turns"
    __table_args__ = (
        sa.UniqueConstraint("session_id", "position", name="uq_turns_session_position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        sa.ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    role: Mapped[str] = mapped_column(sa.String(16))
    content: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="complete")
    """complete | cancelled (stopped by the user; the partial answer is kept)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str | None] = mapped_column(sa.String(200))
    adapter: Mapped[str | None] = mapped_column(sa.String(200))
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    cached_tokens: Mapped[int | None]
    seconds: Mapped[float | None]
    first_token_seconds: Mapped[float | None]
    trace: Mapped[dict[str, Any] | None]
    """What the answer understood, decided and used (``dialoop.evidence.TurnTrace``)."""
    state: Mapped[dict[str, Any] | None]
    """The dialogue state after this answer (``DialogueState.to_dict``; m007)."""

    @validates("content")
    def _valid_content(self, key: str, content: str) -> str:
        return check_text(content, "A message")


class AdapterVersion(Base):
    """One trained LoRA adapter: a version of an adapter line such as "global" or "user:ann"."""

    __tablename__ = "adapters"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_adapters_name_version"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    version: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(16))
    """candidate (trained, not yet judged) | promoted (has served) | rejected (failed the gate)."""
    source: Mapped[str] = mapped_column(sa.String(32))  # consolidation | sft
    user_id: Mapped[str | None] = mapped_column(sa.String(128))  # owner of a personal adapter
    base_model: Mapped[str] = mapped_column(sa.String(200))
    path: Mapped[str] = mapped_column(sa.String(500))  # folder, relative to $DIALOOP_HOME
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)  # gate / training report
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)  # lessons used, settings

    @property
    def key(self) -> str:
        """The name an engine knows this version by."""
        return f"{self.name}@v{self.version}"


class AdapterHead(Base):
    """Which version of an adapter line serves now (none: the base model)."""

    __tablename__ = "adapter_heads"

    name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    version: Mapped[int | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Account(Base):
    """A user of the server, with a role: ``user`` or ``admin``."""

    __tablename__ = "accounts"

    user_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """One API key of an account. Only a salted hash of its secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)  # public, part of the key
    user_id: Mapped[str] = mapped_column(
        sa.ForeignKey("accounts.user_id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[str] = mapped_column(sa.String(300))  # "scrypt$n$r$p$salt$hash"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
# -- learning (dialoop.learn; migration m003_learning) -------------------------------


class Feedback(Base):
    """One rating, correction or preference, as given. Never edited, never lost."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(16))  # rating | correction | preference
    user_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    session_id: Mapped[str | None] = mapped_column(sa.String(32))
    turn_id: Mapped[int | None] = mapped_column(index=True)  # the assistant turn judged
    scope: Mapped[str] = mapped_column(sa.String(140))  # "global" | "user:<id>" (Scope)
    rating: Mapped[int | None]  # +1 | -1
    reason: Mapped[str | None] = mapped_column(sa.Text)
    question: Mapped[str | None] = mapped_column(sa.Text)
    answer: Mapped[str | None] = mapped_column(sa.Text)  # the correction, or the chosen one
    rejected: Mapped[str | None] = mapped_column(sa.Text)  # a preference's rejected response
    adapter: Mapped[str | None] = mapped_column(sa.String(200))  # what answered the turn
    lesson_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lesson(Base):
    """Something taught: a question with the answer it should get (and, for a preference,
    the answer it should not). The correction memory and consolidation read these."""

    __tablename__ = "lessons"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(16))  # correction | preference
    user_id: Mapped[str] = mapped_column(sa.String(128), index=True)  # who taught it
    scope: Mapped[str] = mapped_column(sa.String(140), index=True)  # "global" | "user:<id>" (Scope)
    question: Mapped[str] = mapped_column(sa.Text)
    answer: Mapped[str] = mapped_column(sa.Text)
    rejected: Mapped[str | None] = mapped_column(sa.Text)
    key_terms: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    embedding: Mapped[bytes] = mapped_column(sa.LargeBinary)  # float32, L2-normalized
    status: Mapped[str] = mapped_column(sa.String(16), default="active", index=True)
    """active | superseded (a later lesson replaced it) | forgotten."""
    superseded_by: Mapped[int | None]
    feedback_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]  # when superseded or forgotten


class LessonWording(Base):
    """Another wording of a lesson's question, learned from use: a user corrected it with
    the lesson's answer after the lesson had missed it. The memory matches it like the
    question itself (docs/learning.md)."""

    __tablename__ = "lesson_wordings"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    lesson_id: Mapped[int] = mapped_column(sa.ForeignKey("lessons.id"), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    embedding: Mapped[bytes] = mapped_column(sa.LargeBinary)  # float32, L2-normalized
    feedback_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LearnRun(Base):
    """One consolidation run: a durable queue entry, its progress and its gate report."""

    __tablename__ = "learn_runs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    """queued | running | done | failed | interrupted (its process died)."""
    requested_by: Mapped[str] = mapped_column(sa.String(128))
    trigger: Mapped[str] = mapped_column(sa.String(16))  # manual | threshold | api
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    pid: Mapped[int | None]
    host: Mapped[str | None] = mapped_column(sa.String(200))
    stage: Mapped[str | None] = mapped_column(sa.String(200))  # what it does now
    progress: Mapped[float] = mapped_column(default=0.0)  # 0..1 of the whole run
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # thresholds, overrides
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)  # per adapter line
    error: Mapped[str | None] = mapped_column(sa.Text)
