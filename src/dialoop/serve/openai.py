"""The OpenAI-compatible API: ``POST /v1/chat/completions`` and ``GET /v1/models``.

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
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialoop.assistant import Assistant, Reply
from dialoop.config import Settings
from dialoop.dialogue.session import ChatSession, check_session_name
from dialoop.engine import GenerationParams
from dialoop.errors import (
    DialoopError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RequestTooLargeError,
)
from dialoop.evidence import TurnTrace
from dialoop.serve.auth import CallerDep
from dialoop.serve.httperrors import ErrorResponse, dialoop_error_payload, storable_text
from dialoop.serve.scheduler import Generation, Scheduler
from dialoop.store.accounts import Caller, check_user_name

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

class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None

    @model_validator(mode="after")
    def _only_text(self) -> TextPart:
        if self.type != "text" or self.text is None:
            raise ValueError(f"only text content is supported, not {self.type!r} parts")
        return self


class ChatMessage(BaseModel):
    """A message; fields OpenAI clients echo back (refusal, annotations…) are ignored."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content)
        return self.content or ""

    @model_validator(mode="after")
    def _storable(self) -> ChatMessage:
        storable_text(self.text)  # refused while parsing: before any session or turn is made
        return self


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


# OpenAI parameters dialoop does not implement: accepted when unset or neutral, else
# refused with a clear message (never silently ignored). parallel_tool_calls, store,
# service_tier and reasoning_effort are accepted and have no effect.
_UNSUPPORTED = ("tools", "tool_choice", "functions", "function_call", "logprobs",
                "top_logprobs", "logit_bias", "response_format", "audio", "modalities",
                "prediction", "web_search_options")


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions`` (OpenAI's, minus tools and logprobs)."""

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
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, lt=2**32)
    n: int | None = Field(None, description="Only 1 is supported.")
    frequency_penalty: float | None = Field(None, description="Only 0 is supported.")
    presence_penalty: float | None = Field(None, description="Only 0 is supported.")
    user: str | None = Field(None, max_length=128,
                             description="With an admin key: act for this user.")
    metadata: dict[str, str] | None = Field(
        None, description='{"session": NAME_OR_ID} continues that session.')
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None
    audio: Any = None
    modalities: list[str] | None = None
    prediction: Any = None
    web_search_options: Any = None
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None

    @field_validator(*_UNSUPPORTED)
    @classmethod
    def _unsupported(cls, value: Any) -> Any:
        if value in (None, False, [], {}, ["text"], {"type": "text"}):
            return None
        raise ValueError("not supported by dialoop; leave it out")

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("dialoop gives one answer per request: leave n out or set it to 1")
        return value

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _no_penalty(cls, value: float | None) -> float | None:
        if value not in (None, 0):
            raise ValueError("not supported by dialoop: leave it out or set it to 0")
        return value

    @model_validator(mode="after")
    def _last_is_user(self) -> ChatCompletionRequest:
        last = self.messages[-1]
        if last.role != "user" or not last.text.strip():
            raise ValueError("the last message must be a non-empty user message: "
                             "it is the new turn to answer")
        if any(m.role in ("tool", "function") for m in self.messages):
            raise ValueError("tool messages are not supported by dialoop")
        return self

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
        overrides: dict[str, Any] = {}
        for name in ("temperature", "top_p", "seed"):
            if (value := getattr(self, name)) is not None:
                overrides[name] = value
        if (limit := self.max_completion_tokens or self.max_tokens) is not None:
            overrides["max_tokens"] = limit
        if self.stop:
            overrides["stop"] = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        return assistant.default_params(**overrides)

    def split(self) -> tuple[str | None, list[ChatMessage], str]:
        """(system prompt, earlier user/assistant messages, the new user message)."""
        system = "\n\n".join(m.text for m in self.messages if m.role in ("system", "developer"))
        history = [m for m in self.messages[:-1] if m.role in ("user", "assistant")]
        return system or None, history, self.messages[-1].text


# -- response models (for the schema; responses are built as plain dicts) ---------------

class DialoopInfo(BaseModel):
    session: str = Field(description="The session's name, or its id if unnamed.")
    session_id: str
    turn_id: int = Field(description="The stored answer: give feedback on it by this id.")
    user_turn_id: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


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
    app = request.app
    assistant: Assistant = app.state.assistant
    body.check_size(assistant.parts.settings)
    if body.model not in (assistant.engine.name, "default"):
        raise NotFoundError(
            f"The model {body.model!r} is not served here: use {assistant.engine.name!r} "
            "or 'default' (GET /v1/models)."
        )
    user = _acting_user(caller, body.user)
    session_ref = _session_ref(x_dialoop_session, body.metadata)
    params = body.params(assistant)  # invalid values fail before anything is queued
    system, history, message = body.split()

    def start(gen: Generation):  # runs on a worker thread
        session = _open_session(assistant, user, session_ref, system, history)
        gen.context["session"] = session
        return assistant.stream(message, session=session, user=user, params=params)

    scheduler: Scheduler = app.state.scheduler
    gen = await scheduler.submit(start, session_key=(user, session_ref) if session_ref else None)
    watcher = asyncio.create_task(_cancel_on_disconnect(request, gen))
    try:
        first = await gen.next()
    except BaseException:
        watcher.cancel()
        gen.cancel()
        raise
    if first is None and gen.reply is None:  # stopped before a word: the client left while
        watcher.cancel()                     # it waited; nothing was stored, none to answer
        return Response(status_code=_CLIENT_GONE)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    session: ChatSession = gen.context["session"]
    headers = _session_headers(session)
    if not body.stream:
        try:
            pieces = [first] if first else []
            async for piece in gen.pieces():
                pieces.append(piece)
        finally:
            watcher.cancel()
            gen.cancel()
        reply = _finished(gen)
        headers["X-Dialoop-Turn-Id"] = str(reply.turn_id)
        return JSONResponse(_completion(completion_id, assistant, reply), headers=headers)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = _sse(gen, first, completion_id, assistant.engine.name, include_usage, watcher)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={**headers, "Cache-Control": "no-cache"})


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
    neither loses nor duplicates it.
    """
    session = assistant.session(ref, user=user, system=system)
    if history:
        assistant.parts.sessions.add_turns(
            session, [(m.role, m.text) for m in history], only_if_empty=True,
            trace=TurnTrace.seeded().to_dict())
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


def _usage(reply: Reply) -> dict[str, Any]:
    u = reply.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens}}


def _info(reply: Reply) -> dict[str, Any]:
    return {"session": reply.session, "session_id": reply.session_id,
            "turn_id": reply.turn_id, "user_turn_id": reply.user_turn_id}


def _finish(reply: Reply) -> str:
    return "length" if reply.finish_reason == "length" else "stop"


def _completion(completion_id: str, assistant: Assistant, reply: Reply) -> dict[str, Any]:
    return {
        "id": completion_id, "object": "chat.completion", "created": int(time.time()),
        "model": assistant.engine.name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "finish_reason": _finish(reply), "logprobs": None}],
        "usage": _usage(reply), "system_fingerprint": None, "dialoop": _info(reply),
    }


async def _sse(
    gen: Generation, first: str | None, completion_id: str, model: str, include_usage: bool,
    watcher: asyncio.Task[None],
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

    def delta(content: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return event([{"index": 0, "delta": content, "finish_reason": finish,
                       "logprobs": None}], **extra)

    try:
        yield delta({"role": "assistant", "content": ""})
        if first:
            yield delta({"content": first})
        async for piece in gen.pieces():
            yield delta({"content": piece})
        reply = _finished(gen)
        yield delta({}, _finish(reply), dialoop=_info(reply))
        if include_usage:
            yield event([], usage=_usage(reply), dialoop=_info(reply))
        yield "data: [DONE]\n\n"
    except Exception as exc:  # after the headers went out, an error can only be an event
        if not isinstance(exc, DialoopError):
            log.exception("answer failed mid-stream")
            exc = DialoopError("Internal error: the server log has the details.")
        _, payload = dialoop_error_payload(exc)
        yield f"data: {json.dumps(payload)}\n\n"
    finally:
        watcher.cancel()
        gen.cancel()
