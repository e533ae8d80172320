"""The assistant: sessions + context + engine, composed in :func:`open_assistant`.

    from dialoop import open_assistant

    with open_assistant() as bot:
        print(bot.ask("What is the capital of Japan?").text)
        stream = bot.stream("And its population?", session="trip")
        for text in stream:
            print(text, end="", flush=True)
        print(stream.reply.turn_id)

Order of writes in a turn: the user's message is committed before generation
starts; the answer is committed before the reply is reported done. A crash in
between leaves a user turn without an answer, which the next prompt skips.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dialoop.config import Settings, load_settings
from dialoop.dialogue.context import Prompt, build_prompt
from dialoop.dialogue.session import ChatSession, Sessions, answered
from dialoop.engine import Engine, FinishReason, GenerationParams, Message, Usage, open_engine
from dialoop.errors import InvalidInputError
from dialoop.knowledge import NOTHING, KnowledgeBase, Lookup
from dialoop.store import Database, open_database

__all__ = ["Assistant", "Reply", "ReplyStream", "open_assistant"]

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 1_000_000


@dataclass(frozen=True)
class Reply:
    """A finished answer, as stored."""

    text: str
    session_id: str
    session: str  # the session's name, or its id if unnamed
    turn_id: int  # the stored assistant turn
    user_turn_id: int
    finish_reason: FinishReason
    usage: Usage
    prompt: Prompt

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "session": self.session,
            "session_id": self.session_id,
            "turn_id": self.turn_id,
            "finish_reason": self.finish_reason,
            "tokens": {
                "prompt": self.usage.prompt_tokens,
                "completion": self.usage.completion_tokens,
                "cached": self.usage.cached_tokens,
            },
            "seconds": round(self.usage.seconds, 3),
        }


class ReplyStream:
    """Iterate for the answer's text pieces; afterwards ``reply`` holds the stored result."""

    def __init__(self, produce: Callable[[ReplyStream], Iterator[str]]) -> None:
        self.reply: Reply | None = None
        self._pieces = produce(self)  # the producer sets .reply when the answer is stored

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def close(self) -> None:
        self._pieces.close()  # type: ignore[attr-defined]


class Assistant:
    """Answers messages in stored sessions. Build it with :func:`open_assistant`."""

    def __init__(self, settings: Settings, engine: Engine, db: Database,
                 knowledge: KnowledgeBase | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.db = db
        self.sessions = Sessions(db)
        self.knowledge = knowledge or KnowledgeBase(db, settings)

    # -- sessions -------------------------------------------------------------------

    def session(
        self, ref: str | None = None, *, user: str | None = None, system: str | None = None
    ) -> ChatSession:
        """The session named ``ref`` (created if new), or a new unnamed one."""
        return self.sessions.open(
            ref,
            user or self.settings.user,
            system_prompt=system or self.settings.system_prompt,
            model=self.engine.name,
        )

    def default_params(self, **overrides: Any) -> GenerationParams:
        s = self.settings
        base = GenerationParams(
            temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, max_tokens=s.max_tokens,
            repeat_penalty=s.repeat_penalty, seed=s.seed,
        )
        return dataclasses.replace(base, **overrides) if overrides else base

    # -- answering --------------------------------------------------------------------

    def stream(
        self,
        message: str,
        *,
        session: ChatSession | str | None = None,
        user: str | None = None,
        params: GenerationParams | None = None,
        system: str | None = None,
    ) -> ReplyStream:
        """Answer ``message`` in ``session`` (a session, its name/id, or None for a new one).

        ``system`` is the system prompt of a session created here.
        """
        user = user or self.settings.user
        _check_message(message)
        if not isinstance(session, ChatSession):
            session = self.session(session, user=user, system=system)
        elif session.user_id != user:
            raise InvalidInputError("That session belongs to another user.")
        params = params or self.default_params()
        return ReplyStream(lambda out: self._respond(out, session, message, params))

    def ask(self, message: str, **kwargs: Any) -> Reply:
        """Answer ``message`` and return the stored reply (see :meth:`stream`)."""
        stream = self.stream(message, **kwargs)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    def cancel(self) -> None:
        """Stop the answer being generated now; it is kept, marked cancelled."""
        self.engine.cancel()

    def _respond(
        self, out: ReplyStream, session: ChatSession, message: str, params: GenerationParams
    ) -> Iterator[str]:
        history = [_as_message(t) for t in answered(self.sessions.turns(session))]
        user_turn = self.sessions.add_turn(session, "user", message)
        lookup = self._look_up(message, session.user_id)
        prompt = build_prompt(
            self.engine,
            system=session.system_prompt,
            history=history,
            message=message,
            reserve=params.max_tokens,
            evidence=lookup.evidence,
        )
        pieces: list[str] = []
        finish: FinishReason = "cancelled"
        usage: Usage | None = None
        try:
            # The knowledge's own answer (or its "I don't know") is given as is.
            chunks = (self.engine.stream(prompt.messages, params) if lookup.reply is None
                      else lookup.as_chunks(prompt.tokens))
            for chunk in chunks:
                if chunk.text:
                    pieces.append(chunk.text)
                    yield chunk.text
                if chunk.finish_reason is not None:
                    finish, usage = chunk.finish_reason, chunk.usage
        except GeneratorExit:
            finish = "cancelled"  # the consumer went away: keep what it was shown
        finally:
            if usage is not None or pieces:
                out.reply = self._store_answer(
                    session, user_turn.id, "".join(pieces), finish, usage, prompt, params,
                    lookup,
                )

    def _look_up(self, message: str, user: str) -> Lookup:
        """What the knowledge graph and documents say (the dialogue manager's look_up)."""
        return self.knowledge.lookup(message, user=user) if self.settings.knowledge else NOTHING

    def _store_answer(
        self,
        session: ChatSession,
        user_turn_id: int,
        text: str,
        finish: FinishReason,
        usage: Usage | None,
        prompt: Prompt,
        params: GenerationParams,
        lookup: Lookup = NOTHING,
    ) -> Reply:
        usage = usage or Usage(prompt.tokens, 0, 0, 0.0, None)
        turn = self.sessions.add_turn(
            session,
            "assistant",
            text,
            status="cancelled" if finish == "cancelled" else "complete",
            model=self.engine.name,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            seconds=usage.seconds,
            first_token_seconds=usage.first_token_seconds,
            trace={"context": prompt.describe(), "params": dataclasses.asdict(params),
                   "finish_reason": finish, "knowledge": lookup.describe()},
        )
        return Reply(text, session.id, session.label, turn.id, user_turn_id, finish, usage, prompt)

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        self.engine.close()
        self.db.close()

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_assistant(
    settings: Settings | None = None, *, engine: Engine | None = None, **overrides: Any
) -> Assistant:
    """Compose an assistant from settings (loaded from the environment if not given).

    ``overrides`` are setting names (``model=…``, ``home=…``); ``engine`` lets a caller
    share one loaded engine between assistants.
    """
    settings = settings or load_settings(**overrides)
    db = open_database(settings.resolved_database_url, timeout=settings.db_timeout)
    try:
        engine = engine or open_engine(settings)
    except Exception:
        db.close()
        raise
    return Assistant(settings, engine, db)


def _as_message(turn: Any) -> Message:
    return {"role": turn.role, "content": turn.content}


def _check_message(message: str) -> None:
    if not isinstance(message, str) or not message.strip():
        raise InvalidInputError("The message is empty: type something to ask.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidInputError(
            f"The message has {len(message):,} characters; the limit is {MAX_MESSAGE_CHARS:,}."
        )
