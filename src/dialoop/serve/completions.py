"""``POST /v1/completions``: OpenAI's legacy text completions, answered as a chat turn.

dialoop serves a chat model and learns from conversations, so the ``prompt`` is
answered as a user message in a stored session (the chat template applied), exactly
as ``/v1/chat/completions`` would answer it: the correction memory, the knowledge
graph and the user's adapter apply, and the turn id in the response takes feedback.
What a raw-text continuation server offers beyond that is refused with a clear
message: ``echo``, ``suffix``, ``best_of`` > 1, several prompts, token-id prompts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dialoop.assistant import Assistant, Reply
from dialoop.engine import TokenLogprob
from dialoop.errors import InvalidInputError
from dialoop.serve.auth import CallerDep
from dialoop.serve.httperrors import storable_text
from dialoop.serve.openai import (
    _CLIENT_GONE,
    _ERRORS,
    MAX_STOP,
    DialoopInfo,
    Started,
    StreamOptions,
    TurnRequest,
    UsageOut,
    _acting_user,
    _finished,
    _info,
    _session_ref,
    _usage,
    error_event,
    finish_reason,
    openai_params,
    start_turn,
)

__all__ = ["CompletionRequest", "router"]

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], responses=_ERRORS)
MAX_LOGPROBS = 5  # OpenAI's limit for the legacy endpoint


class CompletionRequest(BaseModel):
    """The body of ``POST /v1/completions``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "model": "default", "prompt": "Name three primary colours.", "max_tokens": 64}]})
    model: str
    prompt: str | list[str] = Field(description="One prompt (a list of one is accepted).")
    max_tokens: int | None = Field(None, ge=1, description="Default: the server's max_tokens.")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, lt=2**32)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = Field(None, max_length=300)
    user: str | None = Field(None, max_length=128)
    metadata: dict[str, str] | None = None
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str:
        if isinstance(value, list):
            if len(value) != 1:
                raise ValueError("dialoop answers one prompt per request: send them one by one")
            value = value[0]
        if not value.strip():
            raise ValueError("the prompt is empty")
        return storable_text(value)

    @field_validator("echo", "suffix")
    @classmethod
    def _not_continuation(cls, value: Any) -> Any:
        if value:
            raise ValueError("dialoop answers the prompt as a chat message and does not "
                             "continue raw text: leave echo and suffix out")
        return None

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("best_of is not supported: use n for several answers")
        return value

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        return value


class CompletionChoiceOut(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: dict[str, Any] | None = None


class TextCompletion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoiceOut]
    usage: UsageOut
    system_fingerprint: str | None = None
    dialoop: DialoopInfo


@router.post("/completions", response_model=TextCompletion,
             summary="Answer a prompt (OpenAI's legacy completions; the prompt is a chat message)")
async def completions(
    body: CompletionRequest,
    request: Request,
    caller: CallerDep,
    x_dialoop_session: Annotated[str | None, Header()] = None,
) -> Any:
    assistant: Assistant = request.app.state.assistant
    n = body.n or 1
    if n > 1 and body.stream:
        raise InvalidInputError("n > 1 is supported without streaming.")
    assert isinstance(body.prompt, str)
    params = openai_params(
        assistant, temperature=body.temperature, top_p=body.top_p, seed=body.seed,
        max_tokens=body.max_tokens, stop=body.stop, frequency_penalty=body.frequency_penalty,
        presence_penalty=body.presence_penalty, logit_bias=body.logit_bias,
        logprobs=body.logprobs)
    turn = TurnRequest(model=body.model, user=_acting_user(caller, body.user),
                       session_ref=_session_ref(x_dialoop_session, body.metadata), system=None,
                       history=[], new=body.prompt, params=params, choices=n)
    started = await start_turn(request, turn)
    if started is None:
        return Response(status_code=_CLIENT_GONE)
    completion_id = f"cmpl-{uuid.uuid4().hex}"
    model = assistant.engine.name
    if not body.stream:
        reply, _ = await started.finish()
        alternatives = started.alternatives()
        choices = [_choice(0, reply.text, reply.finish_reason, reply.logprobs)]
        choices += [_choice(i, a.text, a.finish_reason, a.logprobs)
                    for i, a in enumerate(alternatives, 1)]
        return JSONResponse(
            {"id": completion_id, "object": "text_completion", "created": int(time.time()),
             "model": model, "choices": choices, "usage": _usage(reply, alternatives),
             "system_fingerprint": None, "dialoop": _info(reply)},
            headers={**started.headers, "X-Dialoop-Turn-Id": str(reply.turn_id)})
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return StreamingResponse(_sse(started, completion_id, model, include_usage),
                             media_type="text/event-stream",
                             headers={**started.headers, "Cache-Control": "no-cache"})


def _choice(index: int, text: str, reason: str,
            tokens: Sequence[TokenLogprob] | None) -> dict[str, Any]:
    return {"index": index, "text": text, "finish_reason": finish_reason(reason),
            "logprobs": _legacy_logprobs(tokens)}


def _legacy_logprobs(tokens: Sequence[TokenLogprob] | None, offset: int = 0
                     ) -> dict[str, Any] | None:
    """The legacy endpoint's logprobs: parallel lists, and top alternatives as dicts."""
    if tokens is None:
        return None
    offsets, at = [], offset
    for t in tokens:
        offsets.append(at)
        at += len(t.token)
    return {"tokens": [t.token for t in tokens],
            "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": [{tok: lp for tok, lp, _ in t.top} for t in tokens],
            "text_offset": offsets}


async def _sse(started: Started, completion_id: str, model: str,
               include_usage: bool) -> AsyncIterator[str]:
    created = int(time.time())

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        data: dict[str, Any] = {"id": completion_id, "object": "text_completion",
                                "created": created, "model": model, "choices": choices,
                                "system_fingerprint": None, **extra}
        if include_usage:
            data.setdefault("usage", None)
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    try:
        offset = 0
        async for piece in started.pieces():
            yield event([{"index": 0, "text": str(piece), "finish_reason": None,
                          "logprobs": _legacy_logprobs(piece.logprobs, offset)
                          if piece.logprobs else None}])
            offset += len(piece)
        reply: Reply = _finished(started.gen)
        yield event([{"index": 0, "text": "", "finish_reason": finish_reason(
            reply.finish_reason), "logprobs": None}], dialoop=_info(reply))
        if include_usage:
            yield event([], usage=_usage(reply), dialoop=_info(reply))
        yield "data: [DONE]\n\n"
    except Exception as exc:
        yield error_event(exc)

