"""``POST /v1/responses``: OpenAI's Responses API, on the same turn machinery as chat.

A request is translated into a chat completion request (input items → messages,
``instructions`` → the system prompt, ``text.format`` → ``response_format``, function
tools → ``tools``) and answered by the same code, so the learning loop applies the
same way: the answer is a stored turn (``dialoop.turn_id`` takes feedback), lessons
and the user's adapter apply.

``previous_response_id`` continues the conversation of that response: a response's
id names the stored turn it answers (``resp_<turn id>``), which must be the caller's and the
latest answer of its session (dialoop's sessions are linear; branching from an older
response is refused). Streaming sends OpenAI's typed events (``response.created`` …
``response.output_text.delta`` … ``response.completed``).

Images: ``input_image`` parts with an ``image_url`` (a ``data:`` URL; a local file only
where the server allows it, ``media_local_images``) are read as in chat completions: the
new message's images by OCR into evidence for its turn alone, cited in the trace as
``image:N`` (see :mod:`dialoop.media.images`).

Refused, with a message: built-in tool types (web search, file search, computer use,
code interpreter, MCP: dialoop runs its own tools with ``dialoop.agent``), file inputs
and images by ``file_id``, ``background``, ``conversation``, stored prompts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dialoop.assistant import Assistant, Reply
from dialoop.errors import DialoopError, InvalidInputError, NotFoundError
from dialoop.serve.auth import CallerDep
from dialoop.serve.httperrors import dialoop_error_payload
from dialoop.serve.openai import (
    _CLIENT_GONE,
    _ERRORS,
    ChatCompletionRequest,
    DialoopInfo,
    DialoopOptions,
    Started,
    TurnRequest,
    _acting_user,
    _finished,
    _info,
    _session_ref,
    read_images,
    start_turn,
)
from dialoop.serve.openai_shapes import logprob_content, structured, tool_turn

__all__ = ["ResponsesRequest", "router"]

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], responses=_ERRORS)

_LOGPROBS = "message.output_text.logprobs"


class FunctionTool(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("type")
    @classmethod
    def _function(cls, value: str) -> str:
        if value != "function":
            raise ValueError(f"{value!r} tools are not available here: dialoop takes function "
                             'tools, and runs its own with "dialoop": {"agent": true}')
        return value


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class TextOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: TextFormat | None = None


class ResponsesRequest(BaseModel):
    """The body of ``POST /v1/responses`` (docs/serving.md lists each field)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "model": "default", "input": "What is the capital of Japan?"}]})
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextOptions | None = None
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_output_tokens: int | None = Field(None, ge=1)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    include: list[str] | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    user: str | None = Field(None, max_length=128)
    store: bool | None = None
    truncation: str | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    max_tool_calls: int | None = None
    reasoning: dict[str, Any] | None = None
    background: bool | None = None
    conversation: Any = None
    prompt: Any = None
    dialoop: DialoopOptions | None = None

    @field_validator("background", "conversation", "prompt")
    @classmethod
    def _refused(cls, value: Any) -> Any:
        if value:
            raise ValueError("not supported by dialoop; leave it out (continue a conversation "
                             "with previous_response_id)")
        return None

    @field_validator("reasoning")
    @classmethod
    def _no_reasoning(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value and any(v is not None for v in value.values()):
            raise ValueError("the bundled model does not reason in steps: leave reasoning out")
        return None

    def as_chat(self) -> ChatCompletionRequest:
        """The same request as a chat completion (validated the same way)."""
        messages: list[dict[str, Any]] = []
        if self.instructions:
            messages.append({"role": "system", "content": self.instructions})
        messages += _messages(self.input)
        fmt = self.text.format if self.text and self.text.format else None
        response_format = None
        if fmt is not None and fmt.type != "text":
            response_format = {"type": fmt.type}
            if fmt.type == "json_schema":
                response_format["json_schema"] = {
                    "name": fmt.name or "answer", "description": fmt.description,
                    "schema": fmt.schema_, "strict": fmt.strict}
        logprobs = bool(self.include and _LOGPROBS in self.include) or self.top_logprobs is not None
        try:
            return self._chat(messages, response_format, logprobs)
        except ValidationError as exc:  # said in the Responses API's own terms
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}"
                                 for e in exc.errors())
            raise InvalidInputError(f"Invalid request: {problems}.") from None

    def _chat(self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None,
              logprobs: bool) -> ChatCompletionRequest:
        return ChatCompletionRequest.model_validate({
            "model": self.model, "messages": messages,
            "tools": [{"type": "function", "function": t.model_dump(
                exclude={"type"}, exclude_none=True)} for t in self.tools or []] or None,
            "tool_choice": _choice(self.tool_choice),
            "parallel_tool_calls": self.parallel_tool_calls, "response_format": response_format,
            "temperature": self.temperature, "top_p": self.top_p,
            "max_completion_tokens": self.max_output_tokens, "logprobs": logprobs or None,
            "top_logprobs": self.top_logprobs, "user": self.user, "metadata": self.metadata,
            "dialoop": self.dialoop.model_dump() if self.dialoop else None})


def _choice(choice: str | dict[str, Any] | None) -> Any:
    if isinstance(choice, dict):
        if choice.get("type") != "function" or not choice.get("name"):
            raise InvalidInputError('tool_choice is "auto", "none", "required" or '
                                    '{"type": "function", "name": NAME}.')
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def _messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as chat messages: function calls join an assistant message, their
    outputs become tool messages."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            out.append({"role": item.get("role"), "content": _content(item.get("content"))})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            out.append({"role": "tool", "tool_call_id": item.get("call_id"),
                        "content": output if isinstance(output, str) else _text(output)})
        else:
            raise InvalidInputError(f"Input items of type {kind!r} are not supported: dialoop "
                                    "takes messages, function_call and function_call_output.")
    return out


def _text(content: Any) -> str | None:
    """A function call's output: text only."""
    text = _content(content, images=False)
    assert not isinstance(text, list)  # no image parts were taken
    return text


def _content(content: Any, images: bool = True) -> str | list[dict[str, Any]] | None:
    """A message's content as chat content: its text, or, when it has ``input_image``
    parts, chat completion parts (text and ``image_url``) in the same order."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
        raise InvalidInputError("A message's content is a string or a list of text parts.")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "input_image" and images:
            parts.append({"type": "image_url", "image_url": {"url": _image_url(part),
                                                             "detail": part.get("detail")}})
        else:
            taken = "text and input_image" if images else "text"
            raise InvalidInputError(f"Content of type {kind!r} is not supported here: dialoop "
                                    f"takes {taken}.")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _image_url(part: dict[str, Any]) -> str:
    url = part.get("image_url")
    if part.get("file_id") or not isinstance(url, str) or not url:
        raise InvalidInputError("An input_image part needs an image_url: a data:image/...;"
                                "base64,... URL (or a local file where the server allows it). "
                                "file_id is not supported: dialoop keeps no uploaded files.")
    return url


# -- the response object, as documented (the handler builds it as a dict: see _Shape) -------

class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[dict[str, Any]]
    logprobs: list[dict[str, Any]]


class OutputMessage(BaseModel):
    type: Literal["message"] = "message"
    id: str
    status: Literal["in_progress", "completed", "incomplete"]
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class FunctionCallItem(BaseModel):
    type: Literal["function_call"] = "function_call"
    id: str
    call_id: str = Field(description="Answer it with a function_call_output item of this id.")
    name: str
    arguments: str = Field(description="JSON; always parses and validates against the "
                                       "function's parameter schema.")
    status: Literal["in_progress", "completed"]


class InputTokensDetails(BaseModel):
    cached_tokens: int = Field(description="Prompt tokens reused from the KV cache.")
    cache_write_tokens: int = Field(description="Always 0: dialoop bills no cache writes.")


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = Field(description="Always 0: the model does not reason apart.")


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ResponseObject(BaseModel):
    id: str = Field(description="resp_<turn id>: pass it as previous_response_id to go on.")
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    error: dict[str, Any] | None
    incomplete_details: dict[str, Any] | None
    instructions: str | None
    max_output_tokens: int | None
    model: str
    output: list[OutputMessage | FunctionCallItem]
    parallel_tool_calls: bool
    previous_response_id: str | None
    temperature: float | None
    top_p: float | None
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    text: dict[str, Any]
    metadata: dict[str, str]
    usage: ResponseUsage | None
    store: bool
    truncation: Literal["disabled"]
    dialoop: DialoopInfo | None = None


@router.post(
    "/responses",
    summary="Answer input items (OpenAI's Responses API; stream=true for typed events)",
    responses={200: {"model": ResponseObject, "content": {"text/event-stream": {}},
                     "description": "A response object, or with stream=true response.* "
                                    "events."}},
)
async def create_response(
    body: ResponsesRequest,
    request: Request,
    caller: CallerDep,
    x_dialoop_session: Annotated[str | None, Header()] = None,
) -> Any:
    assistant: Assistant = request.app.state.assistant
    chat = body.as_chat()
    chat.check_size(assistant.parts.settings)
    user = _acting_user(caller, body.user)
    ref = _session_ref(x_dialoop_session, body.metadata)
    if body.previous_response_id:
        ref = _continued(assistant, user, body.previous_response_id, ref)
    _, instructions = structured(chat.response_format)
    system, history, new = chat.split()
    turn = TurnRequest(
        model=chat.model, user=user, session_ref=ref, system=system, history=history, new=new,
        params=chat.params(assistant),
        tools=tool_turn([t.function for t in chat.tools or []], chat.tool_choice,
                        chat.parallel_tool_calls),
        instructions=instructions, agent=bool(chat.dialoop and chat.dialoop.agent))
    if isinstance(new, str) and (images := chat.messages[-1].images):
        turn.evidence = await read_images(request, images)  # this turn's alone
    started = await start_turn(request, turn)
    if started is None:
        return Response(status_code=_CLIENT_GONE)
    stream = started.gen.context["stream"]
    shape = _Shape(body, assistant.engine.name, int(time.time()),
                   f"resp_{stream.input_turn_id}")
    if not body.stream:
        reply, _ = await started.finish()
        return JSONResponse(shape.response(reply),
                            headers={**started.headers, "X-Dialoop-Turn-Id": str(reply.turn_id)})
    return StreamingResponse(_events(started, shape), media_type="text/event-stream",
                             headers={**started.headers, "Cache-Control": "no-cache"})


def _continued(assistant: Assistant, user: str, response_id: str, ref: str | None) -> str:
    """The session a previous response belongs to; it must be that session's latest answer.

    A response's id names the stored turn it answered (``resp_<turn id>``: known as soon
    as the request is stored, before the answer is), so its answer is the turn after it.
    """
    try:
        turn_id = int(response_id.removeprefix("resp_"))
    except ValueError:
        raise NotFoundError(f"No response {response_id!r}: dialoop's ids are resp_<number>.") \
            from None
    sessions = assistant.parts.sessions
    asked = sessions.turn(turn_id, user)
    session = sessions.get(asked.session_id, user)
    turns = sessions.turns(session)
    answers = [t for t in turns if t.role == "assistant"]
    after = next((t for t in turns if t.position > asked.position), None)
    if asked.role == "assistant" or after is None or after.role != "assistant":
        raise NotFoundError(f"No response {response_id!r}.")
    if ref is not None and ref not in (session.id, session.name):
        raise InvalidInputError("previous_response_id and the session named differ: send one.")
    if answers[-1].id != after.id:
        raise InvalidInputError(
            f"{response_id} is not the latest answer of its conversation: dialoop continues "
            "conversations, it does not branch them.")
    return session.id


class _Shape:
    """The response object, as OpenAI shapes it, for one request."""

    def __init__(self, body: ResponsesRequest, model: str, created: int, rid: str) -> None:
        self.body, self.model, self.created, self.id = body, model, created, rid
        self.message_id = f"msg_{uuid.uuid4().hex}"  # known before the turn is stored

    def base(self, status: str) -> dict[str, Any]:
        b = self.body
        fmt = b.text.format.model_dump(by_alias=True, exclude_none=True) \
            if b.text and b.text.format else {"type": "text"}
        return {
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
            "error": None, "incomplete_details": None, "instructions": b.instructions,
            "max_output_tokens": b.max_output_tokens, "model": self.model, "output": [],
            "parallel_tool_calls": b.parallel_tool_calls is not False,
            "previous_response_id": b.previous_response_id,
            "temperature": b.temperature, "top_p": b.top_p,
            "tool_choice": b.tool_choice or "auto",
            "tools": [t.model_dump(exclude_none=True) for t in b.tools or []],
            "text": {"format": fmt}, "metadata": b.metadata or {}, "usage": None,
            "store": True, "truncation": "disabled",
        }

    def message(self, reply: Reply | None, text: str, status: str) -> dict[str, Any]:
        part = self.part(text, reply)
        return {"type": "message", "id": self.message_id, "status": status, "role": "assistant",
                "content": [part] if reply is not None or text else []}

    @staticmethod
    def part(text: str, reply: Reply | None) -> dict[str, Any]:
        tokens = reply.logprobs if reply is not None else None
        return {"type": "output_text", "text": text, "annotations": [],
                "logprobs": logprob_content(tokens) if tokens else []}

    @staticmethod
    def call(call: Any, arguments: str | None = None) -> dict[str, Any]:
        c = call.to_openai()
        return {"type": "function_call", "id": f"fc_{c['id']}", "call_id": c["id"],
                "name": c["function"]["name"],
                "arguments": c["function"]["arguments"] if arguments is None else arguments,
                "status": "completed"}

    def response(self, reply: Reply) -> dict[str, Any]:
        status = "incomplete" if reply.finish_reason in ("length", "cancelled") else "completed"
        out = self.base(status)
        if reply.text or not reply.tool_calls:
            out["output"].append(self.message(reply, reply.text, "completed"))
        out["output"] += [self.call(c) for c in reply.tool_calls]
        if reply.finish_reason == "length":
            out["incomplete_details"] = {"reason": "max_output_tokens"}
        u = reply.usage
        out["usage"] = {"input_tokens": u.prompt_tokens,
                        "input_tokens_details": {"cached_tokens": u.cached_tokens,
                                                 "cache_write_tokens": 0},
                        "output_tokens": u.completion_tokens,
                        "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": u.prompt_tokens + u.completion_tokens}
        out["dialoop"] = _info(reply)
        return out


async def _events(started: Started, shape: _Shape) -> AsyncIterator[str]:
    """OpenAI's typed stream: created, in_progress, the message's text deltas, each function
    call's arguments, completed."""
    seq = 0

    def event(kind: str, **data: Any) -> str:
        nonlocal seq
        seq += 1
        return (f"event: {kind}\ndata: "
                f"{json.dumps({'type': kind, 'sequence_number': seq, **data}, ensure_ascii=False)}"
                "\n\n")

    item = shape.message_id
    try:
        yield event("response.created", response=shape.base("in_progress"))
        yield event("response.in_progress", response=shape.base("in_progress"))
        text: list[str] = []
        async for piece in started.pieces():
            if not text:
                yield event("response.output_item.added", output_index=0,
                            item=shape.message(None, "", "in_progress"))
                yield event("response.content_part.added", item_id=item, output_index=0,
                            content_index=0, part=shape.part("", None))
            text.append(str(piece))
            yield event("response.output_text.delta", item_id=item, output_index=0,
                        content_index=0, delta=str(piece),
                        logprobs=logprob_content(piece.logprobs))
        reply = _finished(started.gen)
        final = shape.response(reply)
        index = 0
        if text:
            whole = "".join(text)
            yield event("response.output_text.done", item_id=item, output_index=0,
                        content_index=0, text=whole,
                        logprobs=logprob_content(reply.logprobs or ()))
            yield event("response.content_part.done", item_id=item, output_index=0,
                        content_index=0, part=shape.part(whole, reply))
            yield event("response.output_item.done", output_index=0,
                        item=shape.message(reply, whole, "completed"))
            index = 1
        for call in reply.tool_calls:
            done = shape.call(call)
            yield event("response.output_item.added", output_index=index,
                        item={**shape.call(call, ""), "status": "in_progress"})
            yield event("response.function_call_arguments.delta", item_id=done["id"],
                        output_index=index, delta=done["arguments"])
            yield event("response.function_call_arguments.done", item_id=done["id"],
                        output_index=index, arguments=done["arguments"])
            yield event("response.output_item.done", output_index=index, item=done)
            index += 1
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        yield event(kind, response=final)
    except Exception as exc:
        if not isinstance(exc, DialoopError):
            exc = DialoopError("Internal error: the server log has the details.")
        status, payload = dialoop_error_payload(exc)
        err = payload.get("error", {})
        yield event("error", code=err.get("code") or str(status), message=err.get("message"),
                    param=err.get("param"))

