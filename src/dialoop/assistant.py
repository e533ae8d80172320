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

Understanding, deciding and acting are the :class:`~dialoop.dialogue.manager.DialogueManager`'s
job: without a domain it is the general assistant's (every message is answered by
the model); with one (``open_assistant(domain="examples/store_support/domain.yaml")``)
it may answer with a question, a template, a tool's result or a hand-off instead.
The answer's trace holds what it understood, decided and used.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dialoop.config import Settings, load_settings
from dialoop.dialogue.context import Prompt, build_prompt
from dialoop.dialogue.domain import Domain, general_domain, load_domain
from dialoop.dialogue.lookup import EvidenceProvider
from dialoop.dialogue.manager import AdapterChooser, DialogueManager, TurnPlan
from dialoop.dialogue.session import ChatSession, Sessions, answered
from dialoop.engine import (
    Chunk,
    Engine,
    FinishReason,
    GenerationParams,
    Message,
    Usage,
    open_engine,
)
from dialoop.engine.embedding import Embedder, default_embedder
from dialoop.errors import InvalidInputError
from dialoop.knowledge import KnowledgeBase
from dialoop.learn.adapters import AdapterStore
from dialoop.learn.feedback import FeedbackReceipt, Scope
from dialoop.learn.loop import LearningLoop
from dialoop.store import Database, open_database
from dialoop.store.models import AdapterVersion, LearnRun, Lesson

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
    adapter: str | None = None  # the adapter version that answered (None: the base model)
    learning: dict[str, Any] = dataclasses.field(default_factory=dict)  # lessons applied

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "adapter": self.adapter,
            "lessons": self.learning.get("lessons", []),
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

    def __init__(
        self, settings: Settings, engine: Engine, db: Database,
        manager: DialogueManager | None = None, knowledge: KnowledgeBase | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.db = db
        self.sessions = Sessions(db)
        self.adapters = AdapterStore(db, settings.home)
        self.knowledge = knowledge or KnowledgeBase(db, settings)
        self.learning = LearningLoop(settings, db, self.adapters, embedder or default_embedder(),
                                     facts=self.knowledge)
        self._loaded: set[str] = set()  # adapter keys loaded into the engine
        self.manager = manager or DialogueManager(
            general_domain(), engine=engine,
            grounding=self.knowledge if settings.knowledge else None)

    @property
    def domain(self) -> Domain:
        return self.manager.domain

    # -- sessions -------------------------------------------------------------------

    def session(
        self, ref: str | None = None, *, user: str | None = None, system: str | None = None
    ) -> ChatSession:
        """The session named ``ref`` (created if new), or a new unnamed one."""
        return self.sessions.open(
            ref,
            user or self.settings.user,
            system_prompt=system or self.settings.system_prompt or self.domain.spec.system_prompt,
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
        adapter: str | None = None,
        memory: bool | None = None,
    ) -> ReplyStream:
        """Answer ``message`` in ``session`` (a session, its name/id, or None for a new one).

        ``system`` is the system prompt of a session created here. ``adapter`` is an
        adapter line (its serving version), ``name@vN``, or ``"none"``; it overrides the
        ``adapter`` setting, which overrides the dialogue manager's adapter chooser, else
        the user's personal adapter, else the global one. ``memory=False`` answers
        without the correction memory.
        """
        if isinstance(session, ChatSession) and user is None:
            user = session.user_id
        user = user or self.settings.user
        _check_message(message)
        fixed = adapter or self.settings.adapter
        # a bad reference fails before anything is stored
        fixed_key = None if fixed in (None, "none") else self._engine_adapter(fixed)
        if not isinstance(session, ChatSession):
            session = self.session(session, user=user, system=system)
        elif session.user_id != user:
            raise InvalidInputError("That session belongs to another user.")
        params = params or self.default_params()
        use_memory = self.settings.learn_memory if memory is None else memory
        return ReplyStream(
            lambda out: self._respond(out, session, message, params, fixed is not None,
                                      fixed_key, use_memory)
        )

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

    # -- learning (dialoop.learn) --------------------------------------------------------
    # Each method acts as ``user`` (default: the ``user`` setting) and raises a
    # DialoopError: InvalidInputError for bad input (nothing stored), NotFoundError for
    # a turn or lesson that is not the user's, PermissionDeniedError for what needs an
    # admin (global lessons, the global adapter).

    def teach(self, question: str, answer: str, *, user: str | None = None,
              scope: Scope = "user") -> FeedbackReceipt:
        """Teach that ``question`` is answered with ``answer``; applies from the next turn."""
        return self.learning.teach(question, answer, user=self._user(user), scope=scope)

    def correct(self, turn_id: int, answer: str, *, user: str | None = None,
                scope: Scope = "user") -> FeedbackReceipt:
        """The answer assistant turn ``turn_id`` should have given."""
        return self.learning.correct(turn_id, answer, user=self._user(user), scope=scope)

    def rate(self, turn_id: int, rating: int, *, user: str | None = None,
             reason: str | None = None) -> FeedbackReceipt:
        """+1 (good) or -1 (bad) on assistant turn ``turn_id``."""
        return self.learning.rate(turn_id, rating, user=self._user(user), reason=reason)

    def prefer(self, chosen: str, rejected: str, *, question: str | None = None,
               turn_id: int | None = None, user: str | None = None,
               scope: Scope = "user") -> FeedbackReceipt:
        """``chosen`` is better than ``rejected`` for ``question`` (or turn ``turn_id``'s)."""
        return self.learning.prefer(chosen, rejected, user=self._user(user), question=question,
                                    turn_id=turn_id, scope=scope)

    def forget(self, lesson_id: int, *, user: str | None = None) -> Lesson:
        """Stop applying a lesson now; the next consolidation leaves it out of the adapter."""
        return self.learning.forget(lesson_id, user=self._user(user))

    def lessons(self, *, user: str | None = None, status: str | None = "active"
                ) -> list[Lesson]:
        """The user's lessons and the global ones (``status=None``: all, not only active)."""
        return self.learning.memory.lessons(user=self._user(user), status=status)

    def promote_lesson(self, lesson_id: int, *, user: str | None = None) -> Lesson:
        """Make a user's lesson global (admins only)."""
        return self.learning.promote_lesson(lesson_id, user=self._user(user))

    def consolidate(self, *, user: str | None = None, wait: bool = True,
                    options: dict[str, Any] | None = None,
                    on_progress: Callable[[LearnRun], None] | None = None) -> LearnRun:
        """Train, gate and promote adapters from the active lessons.

        ``wait=True`` runs here and returns the finished run (its ``report`` says what was
        promoted or rejected and why); ``wait=False`` queues it for a background worker.
        ``options`` override learn_* settings for this run (epochs, gate thresholds, …).
        """
        if wait:
            return self.learning.consolidate(user=self._user(user), options=options,
                                             on_progress=on_progress)
        return self.learning.start_run(user=self._user(user), options=options)

    def learning_status(self, *, user: str | None = None) -> dict[str, Any]:
        """Lessons (active, pending, …), the adapter serving, the last run, satisfaction."""
        return self.learning.status(user=self._user(user))

    def learning_history(self, *, user: str | None = None, line: str | None = None
                         ) -> list[dict[str, Any]]:
        """Adapter versions with their gate metrics and satisfaction rate."""
        return self.learning.history(user=self._user(user), line=line)

    def rollback(self, line: str = "global", version: int | None = None, *,
                 user: str | None = None) -> AdapterVersion | None:
        """Serve an earlier promoted version of ``line`` again, or none (the base model)."""
        return self.learning.rollback(line, version, user=self._user(user))

    def promote(self, line: str, version: int, *, user: str | None = None) -> AdapterVersion:
        """Serve version ``version`` of ``line`` (admins; a user for their own line)."""
        return self.learning.promote(line, version, user=self._user(user))

    def _user(self, user: str | None) -> str:
        return user or self.settings.user

    def _serving_adapter(self, chosen: str | None) -> str | None:
        """Load the chosen serving version (``line@vN``) into the engine; its key or None.

        A newly promoted version is loaded here on first use and the one it replaced
        unloaded: a hot swap, the model itself stays loaded.
        """
        if chosen is None:
            return None
        return self._engine_adapter(chosen, replaces=chosen.partition("@v")[0])

    def _engine_adapter(self, ref: str, *, replaces: str | None = None) -> str:
        """Load the adapter ``ref`` names into the engine (once); return its engine key.

        ``replaces``: unload other loaded versions of this line (they no longer serve).
        """
        row = self.adapters.resolve(ref)
        if row.key not in self._loaded:
            self.engine.load_adapter(row.key, self.adapters.files(row, self.engine.kind))
            self._loaded.add(row.key)
            for old in [k for k in self._loaded if replaces and k.startswith(replaces + "@v")]:
                if old != row.key:
                    self.engine.unload_adapter(old)
                    self._loaded.discard(old)
        return row.key

    def _respond(
        self,
        out: ReplyStream,
        session: ChatSession,
        message: str,
        params: GenerationParams,
        adapter_fixed: bool,
        adapter: str | None,
        use_memory: bool = True,
    ) -> Iterator[str]:
        turns = self.sessions.turns(session)
        history = [_as_message(t) for t in answered(turns)]
        user_turn = self.sessions.add_turn(session, "user", message)
        plan = self.manager.plan(message, user=session.user_id, turns=turns, history=history,
                                 system=session.system_prompt, session_id=session.id,
                                 home=self.settings.home)
        if plan.handed_off:
            self.sessions.set_status(session, "handoff")
        if not adapter_fixed:
            # the domain's adapter chooser, else the user's line, else the global line
            adapter = self._serving_adapter(plan.adapter or self.learning.adapter_for(
                session.user_id))
        # the correction memory: the user's and global lessons that match the message
        lessons = self.learning.memory.match(message, user=session.user_id) if use_memory else []
        # A taught answer is what the assistant should say, unless this turn ran a tool or
        # handed off (those answers report what happened, which no lesson can know).
        direct = None
        if not plan.trace["tool_calls"] and not plan.handed_off:
            direct = self.learning.direct_answer(lessons)
        plan.evidence += [m.evidence() for m in lessons]
        if direct is not None:
            plan.text, plan.trace["response"] = direct, "lesson"
            adapter = None
        if plan.text is not None:  # fixed wording: a question, a template, a tool's message
            prompt = Prompt([], 0, 0, evidence=plan.evidence)
            chunks: Iterator[Chunk] = _fixed_chunks(plan.text, prompt)
        else:
            prompt = build_prompt(
                self.engine,
                system=plan.system,
                history=history,
                message=message,
                reserve=params.max_tokens,
                evidence=plan.evidence,
            )
            chunks = self.engine.stream(prompt.messages, params, adapter=adapter)
        pieces: list[str] = []
        finish: FinishReason = "cancelled"
        usage: Usage | None = None
        try:
            for chunk in chunks:
                if chunk.text:
                    pieces.append(chunk.text)
                    yield chunk.text
                if chunk.finish_reason is not None:
                    finish, usage = chunk.finish_reason, chunk.usage
        except GeneratorExit:
            finish = "cancelled"  # the consumer went away: keep what it was shown
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # stop generating and release the engine now
            if usage is not None or pieces:
                out.reply = self._store_answer(
                    session, user_turn.id, "".join(pieces), finish, usage, prompt, params, plan,
                    adapter, learned=self.learning.trace(lessons, direct),
                )

    def _store_answer(
        self,
        session: ChatSession,
        user_turn_id: int,
        text: str,
        finish: FinishReason,
        usage: Usage | None,
        prompt: Prompt,
        params: GenerationParams,
        plan: TurnPlan,
        adapter: str | None,
        learned: dict[str, Any] | None = None,
    ) -> Reply:
        if usage is None:  # stopped before the engine's last chunk: count what was shown
            usage = Usage(prompt.tokens, self.engine.count_tokens(text) if text else 0, 0,
                          0.0, None)
        turn = self.sessions.add_turn(
            session,
            "assistant",
            text,
            status="cancelled" if finish == "cancelled" else "complete",
            model=self.engine.name,
            adapter=adapter,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            seconds=usage.seconds,
            first_token_seconds=usage.first_token_seconds,
            trace={"dialogue": plan.trace, "context": prompt.describe(),
                   "params": dataclasses.asdict(params), "finish_reason": finish,
                   "learning": learned or {}},
        )
        return Reply(text, session.id, session.label, turn.id, user_turn_id, finish, usage, prompt,
                     adapter, learned or {})

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        self.engine.close()
        self.db.close()

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_assistant(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    domain: Domain | str | Path | None = None,
    policy: str | None = None,
    evidence: Sequence[EvidenceProvider] = (),
    adapters: AdapterChooser | None = None,
    **overrides: Any,
) -> Assistant:
    """Compose an assistant from settings (loaded from the environment if not given).

    ``overrides`` are setting names (``model=…``, ``home=…``); ``engine`` lets a caller
    share one loaded engine between assistants. ``domain`` is a domain file (or a loaded
    :class:`Domain`; default: the general assistant) and ``policy`` its policy ("rule" or
    "learned"; default: the domain's). ``evidence`` providers (e.g. the correction memory)
    are asked for evidence whenever the model answers; ``adapters`` picks a user's adapter.
    """
    settings = settings or load_settings(**overrides)
    if domain is not None and not isinstance(domain, Domain):
        domain = load_domain(domain)  # a bad domain file fails before anything is opened
    db = open_database(settings.resolved_database_url, timeout=settings.db_timeout)
    try:
        opened = engine or open_engine(settings)
    except Exception:
        db.close()
        raise
    try:
        knowledge = KnowledgeBase(db, settings)
        manager = DialogueManager(domain or general_domain(), engine=opened, policy=policy,
                                  evidence=evidence, adapters=adapters,
                                  grounding=knowledge if settings.knowledge else None)
    except Exception:
        db.close()
        if engine is None:
            opened.close()
        raise
    return Assistant(settings, opened, db, manager, knowledge)


def _fixed_chunks(answer: str, prompt: Prompt) -> Iterator[Chunk]:
    """A reply that is not generated: a taught answer, a template, a tool's message."""
    yield Chunk(answer)
    yield Chunk("", finish_reason="stop", usage=Usage(prompt.tokens, 0, 0, 0.0, 0.0))


def _as_message(turn: Any) -> Message:
    return {"role": turn.role, "content": turn.content}


def _check_message(message: str) -> None:
    if not isinstance(message, str) or not message.strip():
        raise InvalidInputError("The message is empty: type something to ask.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidInputError(
            f"The message has {len(message):,} characters; the limit is {MAX_MESSAGE_CHARS:,}."
        )
