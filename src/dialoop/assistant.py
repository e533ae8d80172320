"""The composition root (:func:`open_assistant`) and the assistant it builds.

    from dialoop import open_assistant

    with open_assistant() as bot:
        print(bot.ask("What is the capital of Japan?").text)
        stream = bot.stream("And its population?", session="trip")
        for text in stream:
            print(text, end="", flush=True)
        print(stream.reply.turn_id)
        bot.parts.learning.teach("Who runs Acme?", "Ann Lee.", user="local")

Everything is wired here and only here: :func:`open_parts` composes what does not
need a model (the database, sessions, accounts and permissions, the adapter store,
the knowledge base, the learning loop), and :func:`open_assistant` adds the engine
and the dialogue manager. The server and the CLI take the parts they need from
``assistant.parts`` (or from :func:`open_parts` when no model is needed).

The :class:`Assistant` itself only answers: the dialogue manager's plan is the whole
decision of a turn (what to say or generate from, with which lessons, knowledge,
tools and adapter); the assistant carries it out. Order of writes in a turn: the
user's message is committed before generation starts; the answer, its trace and
the dialogue state are committed before the reply is reported done. A crash in
between leaves a user turn without an answer, which the next prompt skips.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dialoop.config import Settings, load_settings
from dialoop.dialogue.context import Overflow, Prompt, build_prompt
from dialoop.dialogue.domain import Domain, general_domain, load_domain
from dialoop.dialogue.intent import IntentClassifier
from dialoop.dialogue.lookup import EvidenceProvider
from dialoop.dialogue.manager import AdapterChooser, DialogueManager, TurnPlan
from dialoop.dialogue.policy import Policy
from dialoop.dialogue.session import ChatSession, Sessions, answered
from dialoop.dialogue.summary import overflow_summaries, summariser
from dialoop.engine import (
    Chunk,
    Engine,
    GenerationParams,
    Message,
    TokenLogprob,
    Usage,
    open_engine,
)
from dialoop.engine.adapters import LoadedAdapters
from dialoop.engine.embedding import Embedder, default_embedder
from dialoop.errors import InvalidInputError
from dialoop.evidence import Evidence, TurnTrace
from dialoop.knowledge import KnowledgeBase
from dialoop.learn.loop import LearningLoop
from dialoop.policy.online import OnlineLearner, OnlinePolicy
from dialoop.recommend import Recommender
from dialoop.recommend.chat import RecommendGrounding
from dialoop.store import Database, open_database
from dialoop.store.accounts import Accounts, Permissions
from dialoop.store.adapters import AdapterStore

if TYPE_CHECKING:
    from dialoop.agent.calls import RequestedCall, ToolTurn
    from dialoop.media.speech import Transcript

__all__ = ["Assistant", "Parts", "Piece", "Reply", "ReplyStream", "Sample", "ToolResult",
           "open_assistant", "open_parts"]

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 1_000_000


@dataclass(frozen=True)
class ToolResult:
    """What a tool the client ran returned, for the call ``call_id`` the assistant asked for."""

    call_id: str
    content: str
    name: str | None = None  # the function's name, when the client says it


class Piece(str):
    """A piece of streamed answer: the text, and the log-probabilities of its tokens
    (when they were asked for; a fixed answer has none)."""

    logprobs: tuple[TokenLogprob, ...] = ()

    @classmethod
    def of(cls, chunk: Chunk) -> Piece:
        piece = cls(chunk.text)
        piece.logprobs = chunk.logprobs
        return piece


@dataclass(frozen=True)
class Reply:
    """A finished answer, as stored."""

    text: str  # what the assistant said (without its tool calls)
    session_id: str
    session: str  # the session's name, or its id if unnamed
    turn_id: int  # the stored assistant turn
    user_turn_id: int  # the turn it answers: the user's message, or the last tool result
    finish_reason: str  # "stop" | "length" | "cancelled" | "tool_calls"
    usage: Usage
    prompt: Prompt
    trace: TurnTrace  # as stored with the turn
    tool_calls: tuple[RequestedCall, ...] = ()  # the functions the model asks the client to run
    logprobs: tuple[TokenLogprob, ...] | None = None  # None: not asked for, or a fixed answer
    user: str = ""  # whose answer it is

    @property
    def adapter(self) -> str | None:
        """The adapter version that generated the answer (None: the base model)."""
        return self.trace.adapter

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "adapter": self.adapter,
            "lessons": self.trace.lessons,
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


@dataclass(frozen=True)
class Sample:
    """Another answer to a stored reply's prompt, not stored (``n > 1`` in the OpenAI API)."""

    text: str
    finish_reason: str
    usage: Usage
    logprobs: tuple[TokenLogprob, ...] | None = None


class ReplyStream:
    """Iterate for the answer's text pieces; afterwards ``reply`` holds the stored result.

    ``stop``, set from any thread, stops this answer alone (stored, marked cancelled) as
    soon as the engine can, even while it is still evaluating the prompt. A caller with a
    stop flag of its own may put it here before iterating.
    """

    def __init__(self, produce: Callable[[ReplyStream], Iterator[str]]) -> None:
        self.reply: Reply | None = None
        self.input_turn_id: int | None = None  # the stored turn it answers, once stored
        self.stop = threading.Event()
        self._pieces = produce(self)  # the producer sets .reply when the answer is stored

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def close(self) -> None:
        self._pieces.close()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Parts:
    """Everything an assistant is made of except the model, wired once by :func:`open_parts`."""

    settings: Settings
    db: Database
    sessions: Sessions
    accounts: Accounts
    permissions: Permissions
    adapters: AdapterStore  # versions of LoRA adapters, which serves
    knowledge: KnowledgeBase
    learning: LearningLoop
    recommender: Recommender  # the catalogue and each user's interactions

    def close(self) -> None:
        self.db.close()


def open_parts(settings: Settings | None = None, *, embedder: Embedder | None = None,
               **overrides: Any) -> Parts:
    """Compose the parts from settings (loaded from the environment if not given)."""
    settings = settings or load_settings(**overrides)
    db = open_database(settings.resolved_database_url, timeout=settings.db_timeout)
    permissions = Permissions(db, settings.admin_users)
    adapters = AdapterStore(db, settings.home)
    knowledge = KnowledgeBase(db, settings)
    embedder = embedder or default_embedder()
    learning = LearningLoop(settings=settings, db=db, adapters=adapters, embedder=embedder,
                            permissions=permissions, facts=knowledge)
    recommender = Recommender(db, embedder, settings.home, explore=settings.recommend_explore)
    return Parts(settings=settings, db=db, sessions=Sessions(db), accounts=Accounts(db),
                 permissions=permissions, adapters=adapters, knowledge=knowledge,
                 learning=learning, recommender=recommender)


class Assistant:
    """Answers messages in stored sessions. Build it with :func:`open_assistant`.

    ``parts`` are what it was composed from (sessions, the learning loop, the knowledge
    base, accounts): the server and the CLI use them directly. Closing the assistant
    closes its parts, and the engine when it opened it (``owns_engine``).
    """

    def __init__(self, *, parts: Parts, engine: Engine, manager: DialogueManager,
                 owns_engine: bool = True, online: OnlineLearner | None = None) -> None:
        self.parts = parts
        self.online = online  # the policy's online learner, when an admin turned it on
        self.settings = parts.settings
        self.engine = engine
        self.manager = manager
        self._owns_engine = owns_engine
        self._adapters = LoadedAdapters(engine, self._adapter_files)

    @property
    def domain(self) -> Domain:
        return self.manager.domain

    def session(
        self, ref: str | None = None, *, user: str | None = None, system: str | None = None
    ) -> ChatSession:
        """The session named ``ref`` (created if new), or a new unnamed one."""
        return self.parts.sessions.open(
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

    def stream(
        self,
        message: str | None,
        *,
        session: ChatSession | str | None = None,
        user: str | None = None,
        params: GenerationParams | None = None,
        system: str | None = None,
        adapter: str | None = None,
        memory: bool | None = None,
        results: Sequence[ToolResult] = (),
        tools: ToolTurn | None = None,
        agent: bool = False,
        instructions: str | None = None,
        evidence: Sequence[Evidence] = (),
        spoken: Transcript | None = None,
    ) -> ReplyStream:
        """Answer ``message`` in ``session`` (a session, its name/id, or None for a new one).

        ``system`` is the system prompt of a session created here. ``adapter`` is an
        adapter line (its serving version), ``name@vN``, or ``"none"``; it overrides the
        ``adapter`` setting, which overrides the dialogue manager's adapter choosers.
        ``memory=False`` answers without the correction memory.

        Tools a client runs (the OpenAI API): ``tools`` offers functions, and the reply
        may hold ``tool_calls`` instead of (or besides) text; the client runs them and
        sends their ``results`` (with ``message=None``), which are stored as tool turns
        and answered. ``agent=True`` lets the model call dialoop's own tools (built-in,
        the domain's) itself, step by step, before it answers (see
        :mod:`dialoop.agent.loop`). ``instructions`` are added to the system prompt for
        this answer only (what a JSON schema asks for, say). ``params.grammar``
        constrains the answer; a fixed wording (a lesson, a template) is then given to
        the model as evidence instead of said as it is.

        ``evidence`` belongs to this turn alone (what was read from the message's images,
        :func:`dialoop.media.images.ocr_evidence`): the model answering it is shown it and
        its trace cites it; no other turn or user ever sees it. ``spoken`` is the
        transcript the message came from (:func:`dialoop.media.transcribe`): the stored
        user turn's trace records ``{"audio": {"language", "confidence", "seconds"}}``.
        """
        if isinstance(session, ChatSession) and user is None:
            user = session.user_id
        user = user or self.settings.user
        if results:
            if message is not None:
                raise InvalidInputError("Send tool results or a new message, not both.")
            if evidence or spoken is not None:
                raise InvalidInputError("Images and audio belong to a user message, not to "
                                        "tool results.")
            for r in results:
                _check_message(r.content, what="A tool result")
        else:
            _check_message(message)
        if agent and tools is not None:
            raise InvalidInputError("An agent turn runs dialoop's own tools: do not also offer "
                                    "client tools (tools) in the same request.")
        fixed = adapter or self.settings.adapter
        if fixed is not None and fixed != "none":
            fixed = self.parts.adapters.resolve(fixed).key  # a bad reference fails first
        if not isinstance(session, ChatSession):
            session = self.session(session, user=user, system=system)
        elif session.user_id != user:
            raise InvalidInputError("That session belongs to another user.")
        params = params or self.default_params()
        use_memory = self.settings.learn_memory if memory is None else memory
        turn = _TurnRequest(message, tuple(results), tools, agent, instructions,
                            tuple(evidence), _audio_trace(spoken))
        return ReplyStream(
            lambda out: self._respond(out, session, turn, params, fixed, use_memory)
        )

    def ask(self, message: str, **kwargs: Any) -> Reply:
        """Answer ``message`` and return the stored reply (see :meth:`stream`)."""
        stream = self.stream(message, **kwargs)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    def sample(self, reply: Reply, params: GenerationParams, *,
               stop: threading.Event | None = None) -> Sample:
        """Another answer to ``reply``'s prompt, with ``params`` (another seed, say), from the
        same adapter; not stored. A fixed answer (a lesson, a template) is the same again."""
        if not reply.prompt.messages:
            return Sample(reply.text, reply.finish_reason, Usage(0, 0, 0, 0.0, None),
                          () if params.logprobs is not None else None)
        text: list[str] = []
        logprobs: list[TokenLogprob] = []
        finish, usage = "cancelled", Usage(reply.prompt.tokens, 0, 0, 0.0, None)
        with self._adapters.use(reply.adapter) as key:
            for chunk in self.engine.stream(reply.prompt.messages, params, adapter=key,
                                            cache_scope=reply.user, stop=stop):
                text.append(chunk.text)
                logprobs += chunk.logprobs
                if chunk.finish_reason is not None:
                    finish, usage = chunk.finish_reason, chunk.usage or usage
        return Sample("".join(text), finish, usage,
                      tuple(logprobs) if params.logprobs is not None else None)

    def cancel(self) -> None:
        """Stop the answer being generated now; it is kept, marked cancelled."""
        self.engine.cancel()

    # -- carrying out a turn's plan ------------------------------------------------------

    def _respond(
        self, out: ReplyStream, session: ChatSession, req: _TurnRequest, params: GenerationParams,
        adapter: str | None, use_memory: bool,
    ) -> Iterator[str]:
        sessions = self.parts.sessions
        turns = sessions.turns(session)
        history = [_as_message(t) for t in answered(turns)]
        new: str | list[Message]
        if req.results:  # the client ran the tools the last answer asked for
            inputs = self._store_results(session, turns, req.results)
            input_turn, new = inputs[-1], [_as_message(t) for t in inputs]
            question = _last_question(turns)  # what the tools were called for
        else:
            assert req.message is not None
            question = new = req.message
            if turns and turns[-1].role == "user" and turns[-1].content == req.message:
                input_turn = turns[-1]  # a retry after a failed answer: answer it, not repeat it
            else:
                input_turn = sessions.add_turn(
                    session, "user", req.message,
                    traces=[{"audio": req.audio}] if req.audio else None)
        out.input_turn_id = input_turn.id
        with self.online.serving(session.user_id) if self.online else contextlib.nullcontext():
            plan = self.manager.plan(question, user=session.user_id, turns=turns,
                                     history=history, system=session.system_prompt,
                                     session_id=session.id, home=self.settings.home,
                                     adapter=adapter, use_memory=use_memory,
                                     evidence=req.evidence)
        if plan.handed_off:
            sessions.set_status(session, "handoff")
        if plan.text is not None and req.generates(params):
            plan = _as_evidence(plan)
        system = "\n\n".join(p for p in (plan.system, req.instructions) if p) or None
        with self._adapters.use(plan.adapter) as key:
            run: Any = None  # the tool turn or agent run, asked afterwards what it did
            if plan.text is not None:  # fixed wording: a lesson, a question, a template, …
                prompt = Prompt([], 0, 0, evidence=plan.evidence)
                chunks: Iterator[Chunk] = _fixed_chunks(plan.text, prompt)
            else:
                prompt = build_prompt(self.engine, system=system, history=history,
                                      message=new, reserve=params.max_tokens,
                                      evidence=plan.evidence,
                                      summarize=self._overflow(session, history))
                # One cache scope per user: nobody reuses (and so measures) another's prompt.
                how = {"adapter": key, "cache_scope": session.user_id, "stop": out.stop}
                if req.agent:
                    run = self._agent_run(session, prompt.messages, params, how)
                    chunks = iter(run)
                elif req.tools is not None:
                    run = req.tools
                    chunks = run.stream(self.engine, prompt.messages, params, **how)
                else:
                    chunks = self.engine.stream(prompt.messages, params, **how)
                if plan.prefix:  # several requests: the fixed answers first, word for word
                    chunks = itertools.chain([Chunk(plan.prefix + " ")], chunks)
            pieces: list[str] = []
            logprobs: list[TokenLogprob] = []
            if plan.text is None and plan.suffix:  # a question asked last: after the answer
                chunks = _then_ask(chunks, plan.suffix, pieces)
            finish = "cancelled"
            usage: Usage | None = None
            try:
                for chunk in chunks:
                    logprobs += chunk.logprobs
                    if chunk.text or chunk.logprobs:
                        pieces.append(chunk.text)
                        yield Piece.of(chunk)
                    if chunk.finish_reason is not None:
                        finish, usage = chunk.finish_reason, chunk.usage
            except GeneratorExit:
                finish = "cancelled"  # the consumer went away: keep what it was shown
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()  # stop generating and release the engine now
                if usage is not None or any(pieces):
                    done = _Done("".join(pieces), finish, usage,
                                 tuple(logprobs) if params.logprobs is not None
                                 and plan.text is None else None)
                    out.reply = self._store_answer(session, input_turn.id, done, prompt,
                                                   params, plan, req, run)

    def _store_results(
        self, session: ChatSession, turns: Sequence[Any], results: Sequence[ToolResult],
    ) -> list[Any]:
        """Store the tool results as tool turns, in one transaction (a retry reuses them).

        They must answer the calls of the session's last answer, each call at most once.
        """
        last = next((t for t in reversed(turns) if t.role == "assistant"), None)
        asked = {c["id"]: c["function"]["name"] for c in _calls_of(last)}
        if not asked:
            raise InvalidInputError(
                "These are tool results, but the last answer asked for no tool calls: send a "
                "user message instead.")
        ids = [r.call_id for r in results]
        if unknown := [i for i in ids if i not in asked]:
            raise InvalidInputError(
                f"Tool results for {unknown}, but the last answer asked for "
                f"{sorted(asked)}: answer those calls.")
        if len(set(ids)) != len(ids):
            raise InvalidInputError("Two tool results answer the same call: send one per call.")
        stored = [t for t in turns[turns.index(last) + 1:] if t.role == "tool"]
        if [(t.trace or {}).get("tool_call_id") for t in stored] == ids:
            return stored  # a retry after a failed answer: answer them, do not repeat them
        return self.parts.sessions.add_turns(
            session, [("tool", r.content) for r in results],
            traces=[{"tool_call_id": r.call_id, "name": r.name or asked[r.call_id]}
                    for r in results])

    def _agent_run(self, session: ChatSession, messages: list[Message],
                   params: GenerationParams, how: dict[str, Any]) -> Any:
        """The agent loop over dialoop's own tools: the built-in ones and the domain's."""
        from dialoop.agent.builtin import builtin_tools
        from dialoop.agent.loop import run_agent
        from dialoop.agent.tools import ToolContext, ToolRegistry

        registry = ToolRegistry(list(self.domain.tools))
        for tool in builtin_tools(self.parts.knowledge):
            if tool.name not in registry:  # a domain's tool of the same name wins
                registry.add(tool)
        context = ToolContext(session.user_id, session.id, self.settings.home)
        return run_agent(self.engine, messages, params, registry, context,
                         max_steps=self.settings.agent_max_steps,
                         first=self.settings.agent_first, **how)

    def _store_answer(
        self, session: ChatSession, input_turn_id: int, done: _Done, prompt: Prompt,
        params: GenerationParams, plan: TurnPlan, req: _TurnRequest, run: Any,
    ) -> Reply:
        usage = done.usage
        if usage is None:  # stopped before the engine's last chunk: count what was shown
            usage = Usage(prompt.tokens, self.engine.count_tokens(done.text) if done.text
                          else 0, 0, 0.0, None)
        calls: tuple[RequestedCall, ...] = ()
        tools: dict[str, Any] | None = None
        text, finish = done.text, done.finish
        if req.tools is not None:
            calls = tuple(req.tools.calls) if run is not None else ()
            tools = {"offered": [f.name for f in req.tools.functions],
                     "choice": req.tools.choice, "calls": [c.to_openai() for c in calls]}
            if calls:
                text = req.tools.content if run is not None else text
                finish = "tool_calls" if finish == "stop" else finish
        if req.agent and run is not None:
            tools = {"agent_steps": list(run.steps)}
        if req.results:
            tools = {**(tools or {}), "results": [r.call_id for r in req.results]}
        stored = text
        if calls:  # the model sees its own calls in the history, as it wrote them
            from dialoop.agent.calls import render_calls

            stored = "\n".join(p for p in (text, render_calls(calls)) if p)
        trace = TurnTrace(dialogue=plan.trace, lessons=[m.to_dict() for m in plan.lessons],
                          memory=plan.memory, adapter=plan.adapter, context=prompt.describe(),
                          params=_params_trace(params), finish_reason=finish, tools=tools)
        turn = self.parts.sessions.add_turn(
            session, "assistant", stored,
            status="cancelled" if finish == "cancelled" else "complete",
            model=self.engine.name, adapter=plan.adapter,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens, seconds=usage.seconds,
            first_token_seconds=usage.first_token_seconds,
            trace=trace.to_dict(), state=plan.state.to_dict(),
        )
        if self.online is not None:  # a completed task teaches the online learner
            self.online.on_answer(session.user_id, session.id, turn.id, trace.to_dict())
        return Reply(text, session.id, session.label, turn.id, input_turn_id, finish, usage,
                     prompt, trace, calls, done.logprobs, session.user_id)

    def _overflow(self, session: ChatSession, history: list[Message]) -> Overflow | None:
        """What stands in for the history that no longer fits: its stored summary
        (``context_overflow = "summarize"``), or nothing (``"drop"``)."""
        if self.settings.context_overflow != "summarize":
            return None
        summarise = summariser(self.settings.context_summarizer, self.engine,
                               cache_scope=session.user_id)
        return overflow_summaries(self.parts.db, summarise, session.id, history)

    def _adapter_files(self, part: str) -> Path:
        """The file of one adapter part (``user:ann@v3`` or ``user:ann@v3#style``)."""
        return self.parts.adapters.locate(part, self.engine.kind)

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        if self._owns_engine:
            self.engine.close()
        self.parts.close()

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _grounding(parts: Parts, settings: Settings) -> Any:
    """What a general assistant consults before the model: recommendation requests first
    (when a catalogue is imported), then the knowledge graph."""
    knowledge = parts.knowledge if settings.knowledge else None
    if not settings.recommend:
        return knowledge
    return RecommendGrounding(parts.recommender, knowledge)


def open_assistant(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    domain: Domain | str | Path | None = None,
    policy: Policy | str | None = None,
    evidence: Sequence[EvidenceProvider] = (),
    adapters: AdapterChooser | None = None,
    classifier: IntentClassifier | None = None,
    **overrides: Any,
) -> Assistant:
    """Compose an assistant from settings (loaded from the environment if not given).

    ``overrides`` are setting names (``model=…``, ``home=…``); ``engine`` lets a caller
    share one loaded engine between assistants (it is not closed with the assistant).
    ``domain`` is a domain file (or a loaded :class:`Domain`; default: the general
    assistant) and ``policy`` its policy ("rule", "learned", a stored version "vN"/"N",
    "serving" for the promoted version, or a ``Policy``; default: the domain's).
    ``evidence`` providers are asked for evidence whenever the model answers;
    ``adapters`` picks a user's adapter before the learning loop's own choice;
    ``classifier`` is an intent classifier already trained for ``domain`` (to share one).
    """
    settings = settings or load_settings(**overrides)
    if domain is not None and not isinstance(domain, Domain):
        domain = load_domain(domain)  # a bad domain file fails before anything is opened
    if isinstance(policy, str) and policy not in ("rule", "learned"):
        from dialoop.policy.registry import PolicyRegistry  # a stored version: vN, serving

        policy = PolicyRegistry(settings.home).load(domain or general_domain(), policy)
    parts = open_parts(settings)
    try:
        opened = engine or open_engine(settings)
    except Exception:
        parts.close()
        raise
    try:
        choosers = [c for c in (adapters, parts.learning) if c is not None]
        manager = DialogueManager(
            domain or general_domain(), engine=opened, policy=policy, evidence=evidence,
            memory=parts.learning, adapters=choosers, classifier=classifier,
            grounding=_grounding(parts, settings))
    except Exception:
        parts.close()
        if engine is None:
            opened.close()
        raise
    online = None
    if settings.policy_online and not manager.domain.is_general \
            and not manager.domain.spec.policy.online:
        log.warning("policy_online is on, but the domain %r forbids online policy learning "
                    "(policy.online: false); its policy stays as it is", manager.domain.name)
    elif settings.policy_online and not manager.domain.is_general:
        online = OnlineLearner(manager.domain, settings.home, scope=settings.policy_online_scope,
                               exploration=settings.policy_online_exploration,
                               seed=settings.seed, sessions=parts.sessions)
        manager.policy = OnlinePolicy(manager.policy, online)
        parts.learning.feedback.rating_listeners.append(online.on_rating)
    return Assistant(parts=parts, engine=opened, manager=manager, owns_engine=engine is None,
                     online=online)


@dataclass(frozen=True)
class _TurnRequest:
    """What one call of :meth:`Assistant.stream` asks for, besides the session and params."""

    message: str | None
    results: tuple[ToolResult, ...] = ()
    tools: ToolTurn | None = None
    agent: bool = False
    instructions: str | None = None
    evidence: tuple[Evidence, ...] = ()  # this turn's own (its images' text)
    audio: dict[str, Any] | None = None  # the message was spoken: its transcript's record

    def generates(self, params: GenerationParams) -> bool:
        """Whether the answer must be generated, even where the plan has a fixed wording:
        a grammar constrains it, tool results are to be read, or the agent may act."""
        forced = self.tools is not None and self.tools.choice not in ("auto", "none")
        return params.grammar is not None or bool(self.results) or self.agent or forced


@dataclass(frozen=True)
class _Done:
    """A finished generation, before it is stored."""

    text: str
    finish: str
    usage: Usage | None
    logprobs: tuple[TokenLogprob, ...] | None = field(default=None)


def _as_evidence(plan: TurnPlan) -> TurnPlan:
    """``plan`` with its fixed wording given to the model as evidence instead."""
    assert plan.text is not None
    said = Evidence("answer", plan.text, f"plan:{plan.trace.response}")
    return dataclasses.replace(plan, text=None, evidence=[*plan.evidence, said])


def _audio_trace(spoken: Transcript | None) -> dict[str, Any] | None:
    """What a user turn's trace records of the audio it was transcribed from."""
    if spoken is None:
        return None
    return {"language": spoken.language, "confidence": round(spoken.confidence, 4),
            "seconds": round(spoken.duration, 2)}


def _calls_of(turn: Any) -> list[dict[str, Any]]:
    """The tool calls (OpenAI's shape) a stored assistant turn asked for."""
    if turn is None:
        return []
    return list(((turn.trace or {}).get("tools") or {}).get("calls") or [])


def _last_question(turns: Sequence[Any]) -> str:
    question = next((t.content for t in reversed(turns) if t.role == "user"), None)
    if question is None:
        raise InvalidInputError("Tool results need the user's question before them.")
    return question


def _params_trace(params: GenerationParams) -> dict[str, Any]:
    """The parameters as stored in a trace: a grammar is summarised, not copied."""
    out = dataclasses.asdict(params)
    if out.get("grammar"):
        out["grammar"] = f"{len(out['grammar'])} characters"
    return out


def _then_ask(chunks: Iterator[Chunk], question: str, said: list[str]) -> Iterator[Chunk]:
    """The model's answer, then ``question`` word for word (unless the model asked it)."""
    try:
        yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if question not in "".join(said):
        yield Chunk(" " + question)


def _fixed_chunks(answer: str, prompt: Prompt) -> Iterator[Chunk]:
    """A reply that is not generated: a taught answer, a template, a tool's message."""
    yield Chunk(answer)
    yield Chunk("", finish_reason="stop", usage=Usage(prompt.tokens, 0, 0, 0.0, 0.0))


def _as_message(turn: Any) -> Message:
    """A stored turn as the model sees it (a tool result in the model's own format)."""
    if turn.role == "tool":
        from dialoop.agent.calls import result_message

        return result_message((turn.trace or {}).get("name") or "tool", turn.content)
    return {"role": turn.role, "content": turn.content}


def _check_message(message: str | None, *, what: str = "The message") -> None:
    if not isinstance(message, str) or not message.strip():
        raise InvalidInputError(f"{what} is empty: type something to ask.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidInputError(
            f"{what} has {len(message):,} characters; the limit is {MAX_MESSAGE_CHARS:,}."
        )
