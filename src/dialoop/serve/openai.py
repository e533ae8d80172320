"""The OpenAI-compatible API: ``POST /v1/chat/completions`` and ``GET /v1/models``.

(``/v1/completions``, ``/v1/responses`` and ``/v1/embeddings`` are in their own modules;
docs/serving.md lists every parameter and what dialoop does with it.)

How an OpenAI request maps onto dialoop's stored sessions (see docs/serving.md):

- The **last message** must be the user's: it is the new turn.
- **No session named** (plain OpenAI clients): a new session is made for the
  request; the earlier user/assistant messages of the request are stored in it
  first, as its history, and system/developer messages become its system prompt.
  The answer is exactly what a stateless OpenAI endpoint would give, and it is
  stored, so it can receive feedback and be explained.
- **A session named**, with the ``X-Dialoop-Session`` header or
  ``metadata: {"session": "..."}``: the session (a name or id of the caller's) is
  continued, created if new. Its stored history is authoritative: the request's
  earlier messages are used only to seed a session that has no turns yet.
- Every response names its session (``X-Dialoop-Session-Id`` header and the
  ``dialoop`` field) and the stored turn (``X-Dialoop-Turn-Id`` and
  ``dialoop.turn_id``; in a stream, in the last chunks), so that feedback can
  refer to it.
- Session names may be in any language ("日本の旅", emoji), up to 200 characters,
  without control characters (CR, LF, NUL…). HTTP headers carry only latin-1, so
  the ``X-Dialoop-Session`` header carries a name percent-encoded as UTF-8
  (``urllib.parse.quote``; ASCII names other than ``%`` are unchanged), both ways:
  the response's header is encoded so, a request's is decoded (raw UTF-8 bytes
  are understood too). ``metadata.session`` and ``dialoop.session`` carry the
  name itself, and ``X-Dialoop-Session-Id`` is always ASCII.
- ``user``: an admin key may act for any user by naming them here (an app that
  serves many people with one key); with a user's key it must be absent or be
  that user.
- **Tools the client runs** (``tools``): an answer may ask for ``tool_calls``
  (generated under a grammar made from each function's schema, so they always
  parse and validate); the client sends the results as ``tool`` messages after the
  assistant's message, and the new turn is then those results (stored as tool
  turns) rather than a user message.
- ``dialoop: {"agent": true}`` in the body lets the model call dialoop's own tools
  (built-in and the domain's) before it answers; the steps are in the turn's trace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote, unquote

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialoop.assistant import Assistant, Piece, Reply, ReplyStream, Sample, ToolResult
from dialoop.config import Settings
from dialoop.dialogue.session import ChatSession, check_session_name
from dialoop.engine import GenerationParams, TokenLogprob
from dialoop.errors import (
    DialoopError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RequestTooLargeError,
)
from dialoop.evidence import Evidence, TurnTrace
from dialoop.serve.auth import CallerDep
from dialoop.serve.httperrors import ErrorResponse, dialoop_error_payload, storable_text
from dialoop.serve.openai_shapes import (
    ResponseFormat,
    ToolChoice,
    ToolDef,
    check_top_logprobs,
    logprob_content,
    structured,
    token_ids,
    tool_turn,
)
from dialoop.serve.scheduler import Generation, Scheduler
from dialoop.store.accounts import Caller, check_user_name

if TYPE_CHECKING:
    from dialoop.media.speech import Transcript

__all__ = ["ChatCompletionRequest", "router"]

log = logging.getLogger(__name__)

SESSION_HEADER = "X-Dialoop-Session"
_CLIENT_GONE = 499  # nginx's "client closed request": logged, but not as a server error
_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "Invalid request, bad key, not allowed, "
            "unknown model or session."},
    503: {"model": ErrorResponse, "description": "Too many requests wait for the engine."},
}
router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], responses=_ERRORS)


# -- request ----------------------------------------------------------------------------

class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str = Field(description="data:image/...;base64,... (a local path only where the "
                                 "server allows it; never fetched from the internet).")
    detail: str | None = None


class ContentPart(BaseModel):
    """A text part, or an image part (read by OCR: see :mod:`dialoop.media.images`)."""

    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None
    image_url: ImageUrl | None = None

    @model_validator(mode="after")
    def _text_or_image(self) -> ContentPart:
        if self.type == "image_url" and self.image_url is not None:
            from dialoop.media.images import check_image_url

            try:  # whether local files may be read is the server's to say, later
                check_image_url(self.image_url.url, allow_files=True)
            except InvalidInputError as exc:
                raise ValueError(str(exc)) from exc
            return self
        if self.type != "text" or self.text is None:
            raise ValueError(f"only text and image_url content is supported, not {self.type!r} "
                             "parts")
        return self


class FunctionCallIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    arguments: str = Field(description="The arguments as a JSON string.")


class ToolCallIn(BaseModel):
    """A tool call the assistant asked for, as a client sends it back in the history."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=128)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessage(BaseModel):
    """A message; fields OpenAI clients echo back (refusal, annotations…) are ignored."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = Field(None, description="An assistant's calls.")
    tool_call_id: str | None = Field(None, description="The call a tool message answers.")

    @property
    def text(self) -> str:
        """The text; each image stands in it as ``[image N]`` (its evidence is ``image:N``)."""
        if isinstance(self.content, list):
            text = "".join(p.text or "" for p in self.content)
            marks = " ".join(f"[image {n}]" for n in range(1, len(self.images) + 1))
            return f"{text} {marks}".strip() if marks else text
        return self.content or ""

    @property
    def images(self) -> list[str]:
        """The URLs of the message's image parts, in order."""
        if not isinstance(self.content, list):
            return []
        return [p.image_url.url for p in self.content if p.image_url is not None]

    @model_validator(mode="after")
    def _storable(self) -> ChatMessage:
        storable_text(self.text)  # refused while parsing: before any session or turn is made
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only an assistant message has tool_calls")
        return self

    def turn(self) -> tuple[str, str, dict[str, Any] | None]:
        """(role, content, trace fields) of this message stored as earlier history."""
        if self.role == "tool":
            return "tool", self.text, {"tool_call_id": self.tool_call_id, "name": self.name}
        if self.role == "assistant" and self.tool_calls:
            from dialoop.agent.calls import RequestedCall, render_calls

            calls = [RequestedCall.from_openai(c.model_dump()) for c in self.tool_calls]
            content = "\n".join(p for p in (self.text, render_calls(calls)) if p)
            return "assistant", content, {"tools": {"calls": [c.to_openai() for c in calls]}}
        return self.role, self.text, None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


# OpenAI parameters dialoop does not implement: accepted when unset or neutral, else
# refused with a clear message (never silently ignored). store, service_tier and
# reasoning_effort are accepted and have no effect.
_UNSUPPORTED = ("functions", "function_call", "audio", "modalities", "prediction",
                "web_search_options")
MAX_STOP = 4  # OpenAI's limit


class DialoopOptions(BaseModel):
    """dialoop's own request options, in the body's ``dialoop`` object."""

    model_config = ConfigDict(extra="forbid")
    agent: bool = Field(False, description="Let the model call dialoop's own tools (built-in "
                                           "and the domain's) before it answers.")


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions`` (OpenAI's; docs/serving.md lists each field)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "model": "default", "messages": [{"role": "user", "content": "What is the capital of "
                                          "Japan?"}], "stream": False}]})
    model: str = Field(description="A name from GET /v1/models, or 'default'.")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = Field(None, description=f"At most {MAX_STOP} sequences.")
    seed: int | None = Field(None, ge=0, lt=2**32)
    n: int | None = Field(None, ge=1, description="Answers to give (serve_max_choices at "
                                                  "most; the first is the stored turn).")
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    user: str | None = Field(None, max_length=128,
                             description="With an admin key: act for this user.")
    metadata: dict[str, str] | None = Field(
        None, description='{"session": NAME_OR_ID} continues that session.')
    tools: list[ToolDef] | None = None
    tool_choice: ToolChoice | None = None
    functions: Any = None
    function_call: Any = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    logit_bias: dict[str, float] | None = Field(None, max_length=300)
    response_format: ResponseFormat | None = None
    audio: Any = None
    modalities: list[str] | None = None
    prediction: Any = None
    web_search_options: Any = None
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    dialoop: DialoopOptions | None = None

    @field_validator(*_UNSUPPORTED)
    @classmethod
    def _unsupported(cls, value: Any) -> Any:
        if value in (None, False, [], {}, ["text"]):
            return None
        raise ValueError("not supported by dialoop; leave it out (for functions: use tools)")

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        return value

    @model_validator(mode="after")
    def _new_input(self) -> ChatCompletionRequest:
        """The new turn is the last user message, or the tool results after the last
        assistant message with tool calls."""
        last = self.messages[-1]
        if last.role == "tool":
            # Results alone continue a stored session (whose last answer asked for them);
            # after earlier messages, they follow the assistant message that asked.
            earlier = [m for m in self.messages[: len(self.messages) - len(self._results())]
                       if m.role not in ("system", "developer")]
            if earlier and (earlier[-1].role != "assistant" or not earlier[-1].tool_calls):
                raise ValueError("tool messages must follow the assistant message whose "
                                 "tool_calls they answer")
        elif last.role != "user" or not last.text.strip():
            raise ValueError("the last message must be a non-empty user message (the new "
                             "turn to answer) or tool results")
        return self

    def _results(self) -> list[ChatMessage]:
        n = 0
        while n < len(self.messages) and self.messages[-1 - n].role == "tool":
            n += 1
        return self.messages[len(self.messages) - n:]

    def check_size(self, settings: Settings) -> None:
        """Refuse a request beyond the server's bounds before anything is queued or stored.

        Every message costs work before the answer (seeding a session, fitting the
        context), so one request must not carry without end: ``serve_max_messages``
        messages (400) and ``serve_max_chars`` characters in all (413).
        """
        if len(self.messages) > settings.serve_max_messages:
            raise InvalidInputError(
                f"The request has {len(self.messages):,} messages; this server takes at most "
                f"{settings.serve_max_messages:,} (serve_max_messages). Send only the newest, "
                "or continue a stored session (metadata.session) with just the new message."
            )
        chars = sum(len(m.text) for m in self.messages)
        if chars > settings.serve_max_chars:
            raise RequestTooLargeError(
                f"The messages have {chars:,} characters in all; this server takes at most "
                f"{settings.serve_max_chars:,} (serve_max_chars). Send less text."
            )

    def params(self, assistant: Assistant) -> GenerationParams:
        """The generation parameters (a grammar for ``response_format``); bad values fail
        here, before anything is queued."""
        grammar, _ = structured(self.response_format)
        return openai_params(
            assistant, temperature=self.temperature, top_p=self.top_p, seed=self.seed,
            max_tokens=self.max_completion_tokens or self.max_tokens, stop=self.stop,
            frequency_penalty=self.frequency_penalty, presence_penalty=self.presence_penalty,
            logit_bias=self.logit_bias, grammar=grammar,
            logprobs=check_top_logprobs(self.logprobs, self.top_logprobs))

    def split(self) -> tuple[str | None, list[ChatMessage], str | list[ToolResult]]:
        """(system prompt, earlier messages, the new input: a user message or tool results)."""
        system = "\n\n".join(m.text for m in self.messages if m.role in ("system", "developer"))
        if self.messages[-1].role == "tool":
            results = self._results()
            earlier = self.messages[: len(self.messages) - len(results)]
            new: str | list[ToolResult] = [ToolResult(m.tool_call_id or "", m.text, m.name)
                                           for m in results]
        else:
            earlier, new = self.messages[:-1], self.messages[-1].text
        history = [m for m in earlier if m.role in ("user", "assistant", "tool")]
        return system or None, history, new


def openai_params(
    assistant: Assistant, *, temperature: float | None = None, top_p: float | None = None,
    seed: int | None = None, max_tokens: int | None = None,
    stop: str | list[str] | None = None, frequency_penalty: float | None = None,
    presence_penalty: float | None = None, logit_bias: dict[str, float] | None = None,
    grammar: str | None = None, logprobs: int | None = None,
) -> GenerationParams:
    """The assistant's default parameters with what an OpenAI request sets (unset: default)."""
    given: dict[str, Any] = {
        "temperature": temperature, "top_p": top_p, "seed": seed, "max_tokens": max_tokens,
        "frequency_penalty": frequency_penalty, "presence_penalty": presence_penalty,
        "grammar": grammar, "logprobs": logprobs,
        "stop": ((stop,) if isinstance(stop, str) else tuple(stop)) if stop else None,
        "logit_bias": tuple(sorted(token_ids(logit_bias).items())) if logit_bias else None,
    }
    return assistant.default_params(**{k: v for k, v in given.items() if v is not None})


# -- response models (for the schema; responses are built as plain dicts) ---------------

class DialoopInfo(BaseModel):
    session: str = Field(description="The session's name, or its id if unnamed.")
    session_id: str
    turn_id: int = Field(description="The stored answer: give feedback on it by this id.")
    user_turn_id: int = Field(description="The turn it answers (the user's message, or the "
                                          "last tool result).")


class FunctionCallOut(BaseModel):
    name: str
    arguments: str = Field(description="JSON; always parses and validates against the "
                                       "function's parameter schema.")


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    tool_calls: list[ToolCallOut] | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobOut] | None
    refusal: None = None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length", "tool_calls"]
    logprobs: ChoiceLogprobs | None = None


class PromptTokensDetails(BaseModel):
    cached_tokens: int


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: UsageOut
    system_fingerprint: str | None = None
    dialoop: DialoopInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- endpoints -------------------------------------------------------------------------------

@router.get("/models", response_model=ModelList, summary="The model this server answers with")
async def list_models(request: Request, caller: CallerDep) -> dict[str, Any]:
    assistant: Assistant = request.app.state.assistant
    return {"object": "list", "data": [{"id": assistant.engine.name, "object": "model",
                                        "created": request.app.state.started,
                                        "owned_by": "dialoop"}]}


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    summary="Answer a conversation (OpenAI-compatible; stream=true for SSE)",
    responses={200: {"content": {"text/event-stream": {}}, "description":
                     "A chat.completion, or with stream=true chat.completion.chunk events."}},
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    caller: CallerDep,
    x_dialoop_session: Annotated[str | None, Header(
        description="Continue this session (a name or id of yours, a name percent-encoded "
                    "as UTF-8); created if new.")] = None,
) -> Any:
    assistant: Assistant = request.app.state.assistant
    body.check_size(assistant.parts.settings)
    n = body.n or 1
    if n > 1 and (body.stream or body.tools):
        raise InvalidInputError("n > 1 is supported without streaming and without tools: "
                                "leave n out, or ask again.")
    _, instructions = structured(body.response_format)
    system, history, new = body.split()
    turn = TurnRequest(
        model=body.model, user=_acting_user(caller, body.user),
        session_ref=_session_ref(x_dialoop_session, body.metadata), system=system,
        history=history, new=new, params=body.params(assistant),
        tools=tool_turn([t.function for t in body.tools or []], body.tool_choice,
                        body.parallel_tool_calls),
        instructions=instructions, agent=bool(body.dialoop and body.dialoop.agent), choices=n)
    if isinstance(new, str) and (images := body.messages[-1].images):
        turn.evidence = await read_images(request, images)  # this turn's alone
    started = await start_turn(request, turn)
    if started is None:  # the client left while it waited: nothing was stored
        return Response(status_code=_CLIENT_GONE)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if not body.stream:
        reply, pieces = await started.finish()
        headers = {**started.headers, "X-Dialoop-Turn-Id": str(reply.turn_id)}
        return JSONResponse(_completion(completion_id, assistant, reply,
                                        started.alternatives()), headers=headers)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = _sse(started, completion_id, assistant.engine.name, include_usage)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={**started.headers, "Cache-Control": "no-cache"})


# -- running a turn (shared by the OpenAI endpoints) ------------------------------------------

@dataclass
class TurnRequest:
    """One OpenAI request, checked and translated: what to answer, where, and how."""

    model: str
    user: str
    session_ref: str | None
    system: str | None
    history: list[ChatMessage]
    new: str | list[ToolResult]
    params: GenerationParams
    tools: Any = None  # a ToolTurn, or None
    instructions: str | None = None
    agent: bool = False
    choices: int = 1
    evidence: Sequence[Evidence] = ()  # the new message's own (the text of its images)
    spoken: Transcript | None = None  # what the new message was heard from (/api/chat)


@dataclass
class Started:
    """A turn whose answer has begun: its first piece (None: it ended without one)."""

    gen: Generation
    first: Piece | None
    session: ChatSession
    headers: dict[str, str]
    watcher: asyncio.Task[None]

    async def pieces(self) -> AsyncIterator[Piece]:
        """Every piece of the answer, the first included; stops the generation if left."""
        try:
            if self.first:
                yield self.first
            async for piece in self.gen.pieces():
                yield piece  # type: ignore[misc]
        finally:
            self.watcher.cancel()
            self.gen.cancel()

    async def finish(self) -> tuple[Reply, list[Piece]]:
        """Wait for the whole answer: the stored reply and its pieces."""
        pieces = [p async for p in self.pieces()]
        return _finished(self.gen), pieces

    def alternatives(self) -> list[Sample]:
        stream = self.gen.context.get("stream")
        return list(getattr(stream, "alternatives", []))


async def start_turn(request: Request, turn: TurnRequest) -> Started | None:
    """Queue the turn on the scheduler and wait for its first piece.

    Every check that can refuse the request has run before this is called, so a refusal
    stores nothing. Returns None when the client left before the answer began.
    """
    assistant: Assistant = request.app.state.assistant
    settings = assistant.parts.settings
    if turn.model not in (assistant.engine.name, "default"):
        raise NotFoundError(
            f"The model {turn.model!r} is not served here: use {assistant.engine.name!r} "
            "or 'default' (GET /v1/models)."
        )
    if turn.choices > settings.serve_max_choices:
        raise InvalidInputError(f"n is at most {settings.serve_max_choices} on this server "
                                "(serve_max_choices).")

    def start(gen: Generation) -> ReplyStream:  # runs on a worker thread
        session = _open_session(assistant, turn.user, turn.session_ref, turn.system,
                                turn.history)
        gen.context["session"] = session
        message, results = (turn.new, ()) if isinstance(turn.new, str) else (None, turn.new)
        stream = assistant.stream(message, session=session, user=turn.user, params=turn.params,
                                  results=results, tools=turn.tools, agent=turn.agent,
                                  instructions=turn.instructions, evidence=turn.evidence,
                                  spoken=turn.spoken)
        if turn.choices > 1:
            stream = _with_alternatives(assistant, stream, turn.choices, turn.params)
        gen.context["stream"] = stream
        return stream

    scheduler: Scheduler = request.app.state.scheduler
    key = (turn.user, turn.session_ref) if turn.session_ref else None
    gen = await scheduler.submit(start, session_key=key)
    watcher = asyncio.create_task(_cancel_on_disconnect(request, gen))
    try:
        first = await gen.next()
    except BaseException:
        watcher.cancel()
        gen.cancel()
        raise
    if first is None and gen.reply is None:  # stopped before a word: the client left while
        watcher.cancel()                     # it waited; nothing was stored, none to answer
        return None
    session: ChatSession = gen.context["session"]
    return Started(gen, first, session, _session_headers(session), watcher)  # type: ignore[arg-type]


def _with_alternatives(
    assistant: Assistant, main: ReplyStream, n: int, params: GenerationParams,
) -> ReplyStream:
    """``main``, then ``n - 1`` more answers to the same prompt (not stored), each with its
    own seed; they are in the stream's ``alternatives`` once it is done."""

    def produce(out: ReplyStream) -> Iterator[str]:
        main.stop = out.stop
        try:
            yield from main
        finally:
            main.close()
        out.reply = main.reply
        seed = params.seed if params.seed is not None else random.getrandbits(31)
        for i in range(1, n):
            if out.reply is None or out.stop.is_set():
                return
            again = dataclasses.replace(params, seed=(seed + i) % 2**32)
            out.alternatives.append(  # type: ignore[attr-defined]
                assistant.sample(out.reply, again, stop=out.stop))

    stream = ReplyStream(produce)
    stream.alternatives = []  # type: ignore[attr-defined]
    return stream


# -- helpers ---------------------------------------------------------------------------------

def _acting_user(caller: Caller, named: str | None) -> str:
    if not named or named == caller.user:
        return caller.user
    check_user_name(named)  # the rule of account names: never a name no account can have
    if not caller.is_admin:
        raise PermissionDeniedError(
            f"`user` names {named!r}, but this key is {caller.user}'s: only an admin key may "
            "act for another user. Leave `user` out."
        )
    return named


def _session_ref(header: str | None, metadata: dict[str, str] | None) -> str | None:
    """The session the request names, checked before anything is queued or written."""
    named = _header_name(header).strip() if header else ""
    meta = ((metadata or {}).get("session") or "").strip()
    if named and meta and named != meta:
        raise InvalidInputError(
            f"The {SESSION_HEADER} header ({named!r}) and metadata.session ({meta!r}) name "
            "different sessions: send one."
        )
    ref = named or meta
    return check_session_name(ref) if ref else None


def _header_name(value: str) -> str:
    """A session name from the request header: percent-encoded UTF-8, or raw UTF-8.

    Servers read header bytes as latin-1; a client that sent raw UTF-8 (curl does)
    arrives as latin-1 mojibake, which decodes back exactly.
    """
    if not value.isascii():
        try:
            return value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return value  # latin-1 it was ("café")
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"The {SESSION_HEADER} header ({value!r}) is not percent-encoded UTF-8: encode "
            "the name as urllib.parse.quote does (a literal % is %25)."
        ) from None


# Printable ASCII but "%" passes unchanged; anything else is percent-encoded as UTF-8.
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def _session_headers(session: ChatSession) -> dict[str, str]:
    """The session's id and name as response headers (latin-1 only: the name is
    percent-encoded, so "日本の旅" cannot fail the response after the answer is stored)."""
    return {"X-Dialoop-Session-Id": quote(session.id, safe=_HEADER_SAFE),
            SESSION_HEADER: quote(session.label, safe=_HEADER_SAFE)}


def _open_session(
    assistant: Assistant, user: str, ref: str | None, system: str | None,
    history: list[ChatMessage],
) -> ChatSession:
    """The session to answer in; an empty one is seeded with the request's history.

    The history is stored in one transaction, and only if the session has no turns:
    a request that failed after seeding (or was killed during it) can be retried and
    neither loses nor duplicates it. An assistant message's tool calls and a tool
    message's call id are kept in the turns' traces.
    """
    session = assistant.session(ref, user=user, system=system)
    if history:
        seeded = TurnTrace.seeded().to_dict()
        turns = [m.turn() for m in history]
        assistant.parts.sessions.add_turns(
            session, [(role, content) for role, content, _ in turns], only_if_empty=True,
            traces=[{**seeded, **(extra or {})} for _, _, extra in turns])
    return session


async def _cancel_on_disconnect(request: Request, gen: Generation) -> None:
    """Stop the generation when the client goes away (ASGI reports it through receive)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            gen.cancel()
            return


def _finished(gen: Generation) -> Reply:
    if gen.reply is None:
        raise DialoopError("The answer was not stored; see the server log.")
    return gen.reply


def _usage(reply: Reply, extra: Sequence[Sample] = ()) -> dict[str, Any]:
    u = reply.usage
    completion = u.completion_tokens + sum(a.usage.completion_tokens for a in extra)
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": completion,
            "total_tokens": u.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens}}


def _info(reply: Reply) -> dict[str, Any]:
    return {"session": reply.session, "session_id": reply.session_id,
            "turn_id": reply.turn_id, "user_turn_id": reply.user_turn_id}


def finish_reason(reason: str) -> str:
    """OpenAI's finish_reason for dialoop's (a cancelled answer ended: "stop")."""
    return reason if reason in ("length", "tool_calls") else "stop"


def _logprobs(tokens: Sequence[TokenLogprob] | None) -> dict[str, Any] | None:
    return None if tokens is None else {"content": logprob_content(tokens), "refusal": None}


def _choice(index: int, text: str, reason: str, calls: Sequence[Any],
            tokens: Sequence[TokenLogprob] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls
                               else None, "refusal": None}
    if calls:
        message["tool_calls"] = [c.to_openai() for c in calls]
    return {"index": index, "message": message, "finish_reason": finish_reason(reason),
            "logprobs": _logprobs(tokens)}


def _completion(completion_id: str, assistant: Assistant, reply: Reply,
                alternatives: Sequence[Sample] = ()) -> dict[str, Any]:
    choices = [_choice(0, reply.text, reply.finish_reason, reply.tool_calls, reply.logprobs)]
    choices += [_choice(i, a.text, a.finish_reason, (), a.logprobs)
                for i, a in enumerate(alternatives, 1)]
    return {
        "id": completion_id, "object": "chat.completion", "created": int(time.time()),
        "model": assistant.engine.name, "choices": choices,
        "usage": _usage(reply, alternatives), "system_fingerprint": None,
        "dialoop": _info(reply),
    }


async def _sse(
    started: Started, completion_id: str, model: str, include_usage: bool,
) -> AsyncIterator[str]:
    created = int(time.time())

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        data: dict[str, Any] = {
            "id": completion_id, "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": None, "choices": choices, **extra,
        }
        if include_usage:  # OpenAI sends "usage": null on every chunk but the last
            data.setdefault("usage", None)
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    def delta(content: dict[str, Any], finish: str | None = None,
              tokens: Sequence[TokenLogprob] | None = None, **extra: Any) -> str:
        return event([{"index": 0, "delta": content, "finish_reason": finish,
                       "logprobs": _logprobs(tokens) if tokens else None}], **extra)

    try:
        yield delta({"role": "assistant", "content": ""})
        async for piece in started.pieces():
            yield delta({"content": str(piece)}, tokens=piece.logprobs)
        reply = _finished(started.gen)
        for i, call in enumerate(reply.tool_calls):
            yield delta({"tool_calls": [{"index": i, **call.to_openai()}]})
        yield delta({}, finish_reason(reply.finish_reason), dialoop=_info(reply))
        if include_usage:
            yield event([], usage=_usage(reply), dialoop=_info(reply))
        yield "data: [DONE]\n\n"
    except Exception as exc:  # after the headers went out, an error can only be an event
        yield error_event(exc)


def error_event(exc: Exception) -> str:
    """An error as a server-sent event (after the headers went out, it can only be one)."""
    if not isinstance(exc, DialoopError):
        log.exception("answer failed mid-stream")
        exc = DialoopError("Internal error: the server log has the details.")
    _, payload = dialoop_error_payload(exc)
    return f"data: {json.dumps(payload)}\n\n"


# -- images in the new message (dialoop.media.images) -----------------------------------------

async def read_images(request: Request, urls: list[str]) -> list[Evidence]:
    """The evidence of a new message's images, read by OCR on a worker thread; it is given
    to that message's turn alone (``Assistant.stream(evidence=...)``)."""
    from dialoop.media.images import image_evidence

    assistant: Assistant = request.app.state.assistant
    allow_files = assistant.parts.settings.media_local_images
    return await asyncio.to_thread(image_evidence, urls, allow_files=allow_files)
