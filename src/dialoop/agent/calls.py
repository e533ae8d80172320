"""Function calling: the model sees tools, asks for calls, and every call it asks for is
well-formed.

    turn = ToolTurn([FunctionSpec.of_tool(t) for t in registry], choice="auto")
    for chunk in turn.stream(engine, messages, params, cache_scope=user):
        print(chunk.text, end="")          # a plain answer streams; call text never does
    turn.finish                            # "tool_calls" | "stop" | "length" | "cancelled"
    turn.calls                             # [RequestedCall(id, name, arguments), …]

The format is the one SmolLM2-Instruct learned from the APIGen function-calling part of
SmolTalk: the system message lists the tools as JSON inside ``<tools>…</tools>``, and the
model answers ``<tool_call>[{"name": …, "arguments": {…}}, …]</tool_call>``. An earlier
call appears in the history the same way (:func:`render_calls`); a result comes back
inside ``<tool_response>…</tool_response>`` (:func:`render_result`).

Well-formed whatever the model's size: a call is generated under a grammar
(:func:`calls_grammar`) that admits only a JSON array of calls of the given functions
whose arguments match each function's JSON Schema. With ``choice="auto"`` the grammar is
*lazy*: the model first writes freely; only if it starts a call (writes ``<tool_call>``)
is the answer generated again from the same messages under the grammar — the engine's
prefix cache makes the second prompt nearly free. The grammar needs the llama.cpp engine;
on the others a call is parsed as written and any fault is recorded in ``turn.problems``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import jsonschema

from dialoop.engine import Chunk, GenerationParams, Message, Usage
from dialoop.engine.params import MAX_STOP_SEQUENCES
from dialoop.errors import InvalidInputError

if TYPE_CHECKING:
    from dialoop.agent.tools import Tool
    from dialoop.engine import Engine

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "Finish",
    "FunctionSpec",
    "RequestedCall",
    "ToolTurn",
    "calls_grammar",
    "complete_calls",
    "new_call_id",
    "parse_calls",
    "render_calls",
    "render_result",
    "result_message",
    "to_model_messages",
    "tools_prompt",
    "usage_sum",
    "with_tools_prompt",
]

log = logging.getLogger(__name__)

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
RESULT_OPEN = "<tool_response>"
RESULT_CLOSE = "</tool_response>"
RESULT_ROLE = "user"  # the role a result is shown in (see result_message)

MIN_CALL_TOKENS = 192  # the least a call may take, whatever the answer's max_tokens

Finish = Literal["tool_calls", "stop", "length", "cancelled"]

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what OpenAI accepts as a function name
_EMPTY_OBJECT: Mapping[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class FunctionSpec:
    """A function the model may call: its name, what it does, its arguments' JSON Schema."""

    name: str
    description: str
    parameters: Mapping[str, Any]

    @classmethod
    def from_openai(cls, tool: Any) -> FunctionSpec:
        """From an OpenAI ``tools`` item ``{"type": "function", "function": {…}}``.

        ``strict`` is accepted and changes nothing: arguments are always enforced.
        """
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            raise InvalidInputError(
                'Each tool must be {"type": "function", "function": {"name": …, '
                '"parameters": {…}}}; other tool types are not supported.')
        fn = tool.get("function")
        if not isinstance(fn, Mapping):
            raise InvalidInputError('A tool of type "function" needs a "function" object.')
        name = fn.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInputError(
                f"Invalid function name {name!r}: use 1 to 64 letters, digits, '_' or '-'.")
        description = fn.get("description", "")
        if not isinstance(description, str):
            raise InvalidInputError(f"The description of function {name!r} must be text.")
        strict = fn.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise InvalidInputError(f"'strict' of function {name!r} must be true or false.")
        return cls(name, description, _object_schema(name, fn.get("parameters")))

    @classmethod
    def of_tool(cls, tool: Tool) -> FunctionSpec:
        """A registered :class:`~dialoop.agent.tools.Tool` (its schema is already checked)."""
        return cls(tool.name, tool.description, _object_schema(tool.name, tool.parameters))

    def to_json(self) -> dict[str, Any]:
        """As the tools prompt lists it."""
        return {"name": self.name, "description": self.description,
                "parameters": dict(self.parameters)}


def _object_schema(name: str, schema: Any) -> Mapping[str, Any]:
    """``schema`` checked to be a JSON Schema of an object (None: no arguments)."""
    if schema is None:
        return _EMPTY_OBJECT
    if not isinstance(schema, Mapping):
        raise InvalidInputError(f"The parameters of function {name!r} must be a JSON Schema "
                                "object.")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidInputError(
            f"The parameters of function {name!r} are not a valid JSON Schema: {exc.message}"
        ) from None
    kind = schema.get("type", "object")
    if kind != "object":
        raise InvalidInputError(f"The parameters of function {name!r} must be a schema of "
                                f'"type": "object" (arguments are named), not {kind!r}.')
    return {"type": "object", **schema}


def new_call_id() -> str:
    """A fresh call id in OpenAI's shape: ``call_`` and 24 hex digits."""
    return "call_" + secrets.token_hex(12)


@dataclass(frozen=True)
class RequestedCall:
    """One call the model asked for (not yet run)."""

    id: str
    name: str
    arguments: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        """As an item of an assistant message's ``tool_calls``."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name,
                             "arguments": json.dumps(self.arguments, ensure_ascii=False)}}

    @classmethod
    def from_openai(cls, d: Any) -> RequestedCall:
        """From an item of an assistant message's ``tool_calls`` (arguments as JSON text)."""
        fn = d.get("function") if isinstance(d, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise InvalidInputError(
                'Each tool call must be {"id": …, "type": "function", "function": '
                '{"name": …, "arguments": "<JSON>"}}.')
        raw = fn.get("arguments", "{}")
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"The arguments of the call of {fn['name']!r} are not JSON: {exc.msg}.") from None
        if not isinstance(arguments, dict):
            raise InvalidInputError(
                f"The arguments of the call of {fn['name']!r} must be a JSON object.")
        call_id = d.get("id")
        return cls(call_id if isinstance(call_id, str) and call_id else new_call_id(),
                   fn["name"], arguments)


# -- the format -----------------------------------------------------------------------


def tools_prompt(functions: Sequence[FunctionSpec]) -> str:
    """The system-prompt text that lists ``functions`` and says how to call them."""
    listed = json.dumps([f.to_json() for f in functions], ensure_ascii=False)
    return (
        "You can use the following tools:\n"
        f"<tools>{listed}</tools>\n\n"
        "To call tools, reply with the calls alone, in exactly this format, and no other "
        "text:\n"
        f'{CALL_OPEN}[{{"name": "tool_name", "arguments": {{"argument": "value"}}}}]'
        f"{CALL_CLOSE}\n"
        "List several calls in the array if you need several. Each result comes back in "
        f"{RESULT_OPEN} tags. When no tool is needed, or the results you need are there, "
        "answer the user directly."
    )


def render_calls(calls: Sequence[RequestedCall]) -> str:
    """How an assistant's earlier calls appear in the model's history."""
    items = [{"name": c.name, "arguments": c.arguments} for c in calls]
    return f"{CALL_OPEN}{json.dumps(items, ensure_ascii=False)}{CALL_CLOSE}"


def render_result(name: str, content: str) -> str:
    """How the result of a call of ``name`` is shown to the model (``content``: its text,
    JSON for a tool's result)."""
    return f"{RESULT_OPEN}\n{json.dumps({'name': name, 'content': content}, ensure_ascii=False)}" \
           f"\n{RESULT_CLOSE}"


def result_message(name: str, content: str) -> Message:
    """The message that shows the model a call's result. Its role is "user": SmolLM2's
    chat template would render a "tool" role, but the model never saw one."""
    return {"role": RESULT_ROLE, "content": render_result(name, content)}


def to_model_messages(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    """OpenAI chat messages (assistant ``tool_calls``, ``tool`` results) as the model sees
    them: calls rendered into the assistant's text, each result a :func:`result_message`
    named after the call it answers (``tool_call_id``)."""
    names: dict[str, str] = {}
    out: list[Message] = []
    for m in messages:
        content = m.get("content") or ""
        if not isinstance(content, str):
            raise InvalidInputError("to_model_messages takes text contents; join the parts "
                                    "of a multi-part content first.")
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls = [RequestedCall.from_openai(c) for c in m["tool_calls"]]
            names.update((c.id, c.name) for c in calls)
            said = f"{content}\n" if content.strip() else ""
            out.append({"role": "assistant", "content": said + render_calls(calls)})
        elif m.get("role") == "tool":
            call_id = m.get("tool_call_id")
            name = names.get(call_id) if isinstance(call_id, str) else None
            if name is None:
                raise InvalidInputError(
                    f"The tool message for {call_id!r} answers no earlier assistant tool call: "
                    "give the tool_call_id of a call in the history.")
            out.append(result_message(name, content))
        else:
            out.append({"role": str(m.get("role")), "content": content})
    return out


def parse_calls(text: str) -> list[RequestedCall]:
    """The calls in ``text`` (one or more ``<tool_call>`` blocks, each a JSON array of
    ``{"name", "arguments"}`` or one such object); each gets a fresh id."""
    rest = text.strip()
    if not rest.startswith(CALL_OPEN):
        raise InvalidInputError(f"A tool call must start with {CALL_OPEN}: got {_clip(rest)!r}.")
    calls: list[RequestedCall] = []
    while rest:
        if not rest.startswith(CALL_OPEN):
            raise InvalidInputError(f"Unexpected text after a tool call: {_clip(rest)!r}.")
        end = rest.find(CALL_CLOSE)
        if end < 0:
            raise InvalidInputError(f"A tool call is not closed with {CALL_CLOSE}.")
        body = rest[len(CALL_OPEN):end]
        rest = rest[end + len(CALL_CLOSE):].strip()
        try:
            items = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"A tool call is not JSON ({exc.msg}): "
                                    f"{_clip(body)!r}.") from None
        for item in items if isinstance(items, list) else [items]:
            calls.append(_call_of(item))
    if not calls:
        raise InvalidInputError("The tool call lists no call.")
    return calls


def complete_calls(text: str) -> list[RequestedCall]:
    """The calls that were finished in ``text``, a call list cut off by the token limit:
    ``<tool_call>[{…}, {…}, {…`` gives the first two. Under the calls grammar a cut list is
    the only way generation can fail to parse (a small model may go on calling, each call
    well-formed, until the room runs out); the finished calls are as good as any."""
    rest = text.strip()
    if not rest.startswith(CALL_OPEN):
        return []
    rest = rest[len(CALL_OPEN):].lstrip()
    if not rest.startswith("["):
        return []
    decoder, pos, calls = json.JSONDecoder(), 1, []
    while True:
        while pos < len(rest) and rest[pos] in " \t\r\n,":
            pos += 1
        try:
            item, pos = decoder.raw_decode(rest, pos)
            calls.append(_call_of(item))
        except (json.JSONDecodeError, InvalidInputError):
            return calls


def _call_of(item: Any) -> RequestedCall:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise InvalidInputError(
            f'Each tool call must be {{"name": …, "arguments": {{…}}}}: got {_clip(item)!r}.')
    arguments = item.get("arguments", {})
    if not isinstance(arguments, dict):
        raise InvalidInputError(f"The arguments of the call of {item['name']!r} must be a "
                                "JSON object.")
    return RequestedCall(new_call_id(), item["name"], arguments)


def _clip(x: object, n: int = 80) -> str:
    s = x if isinstance(x, str) else json.dumps(x, ensure_ascii=False, default=str)
    return s if len(s) <= n else s[:n] + "…"


def calls_grammar(functions: Sequence[FunctionSpec], *, only: str | None = None,
                  parallel: bool = True) -> str:
    """GBNF for ``<tool_call>[…]</tool_call>``: a JSON array (of one call unless
    ``parallel``) of ``{"name": <one of the functions, or only>, "arguments": <its schema>}``.
    """
    from dialoop.engine.grammar import json_grammar

    chosen = [f for f in functions if only is None or f.name == only]
    if not chosen:
        raise InvalidInputError(f"There is no function {only!r} to call." if only
                                else "There are no functions to call.")
    one = [{"type": "object",
            "properties": {"name": {"const": f.name}, "arguments": dict(f.parameters)},
            "required": ["name", "arguments"], "additionalProperties": False}
           for f in chosen]
    schema: dict[str, Any] = {"type": "array", "minItems": 1,
                              "items": one[0] if len(one) == 1 else {"anyOf": one}}
    if not parallel:
        schema["maxItems"] = 1
    return json_grammar(schema, prefix=CALL_OPEN, suffix=CALL_CLOSE)


# -- one turn with tools --------------------------------------------------------------


Choice = str  # "auto" | "none" | "required" | a function's name


@dataclass
class ToolTurn:
    """One assistant turn that may answer or call tools (see the module docstring).

    After :meth:`stream` has been iterated: ``calls`` (empty for a plain answer),
    ``content`` (the text; before the calls, if the model wrote any), ``finish`` and
    ``usage`` (both generations summed), and ``problems``: calls that did not parse or
    validate (possible only on an engine without grammars), one line each.
    """

    functions: Sequence[FunctionSpec]
    choice: Choice = "auto"
    parallel: bool = True
    calls: list[RequestedCall] = field(default_factory=list, init=False)
    content: str = field(default="", init=False)
    finish: Finish | None = field(default=None, init=False)
    usage: Usage | None = field(default=None, init=False)
    problems: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.functions]
        if len(set(names)) != len(names):
            raise InvalidInputError("Two tools have the same name: give each its own.")
        if self.choice not in ("auto", "none", "required") and self.choice not in names:
            raise InvalidInputError(
                f"tool_choice {self.choice!r} is not 'auto', 'none', 'required' or the name "
                f"of a given tool ({', '.join(names) or 'none given'}).")
        if not self.functions and self.choice != "none":
            raise InvalidInputError(f"tool_choice {self.choice!r} needs at least one tool.")

    def stream(self, engine: Engine, messages: Sequence[Message], params: GenerationParams,
               **engine_kwargs: Any) -> Iterator[Chunk]:
        """Generate the turn; yields the chunks of a plain answer (or of the text before
        the calls) as they come, and a last chunk with the engine's finish reason and the
        summed usage."""
        if not self.functions:
            yield from self._plain(engine, messages, params, engine_kwargs)
            return
        prompted = with_tools_prompt(messages, self.functions)
        if self.choice == "none":  # the same prompt (cached), and a call is cut off
            yield from self._plain(engine, prompted, _stopping_at_calls(params), engine_kwargs)
            return
        if self.choice == "auto":
            found_call = yield from self._until_call(engine, prompted, params, engine_kwargs)
            if not found_call:
                return
        only = None if self.choice in ("auto", "required") else self.choice
        grammar = calls_grammar(self.functions, only=only, parallel=self.parallel)
        room = replace(params, grammar=grammar,  # a call cut short is of no use
                       max_tokens=max(params.max_tokens, MIN_CALL_TOKENS))
        text, reason, usage = _collect(engine.stream(prompted, room, **engine_kwargs))
        self.usage = usage_sum(self.usage, usage)
        self._take_calls(text, reason)
        yield Chunk("", finish_reason=reason, usage=self.usage)

    def _plain(self, engine: Engine, messages: Sequence[Message], params: GenerationParams,
               engine_kwargs: dict[str, Any]) -> Iterator[Chunk]:
        parts = []
        for chunk in engine.stream(messages, params, **engine_kwargs):
            parts.append(chunk.text)
            if chunk.finish_reason is not None:
                self.usage, self.finish = chunk.usage, chunk.finish_reason
            yield chunk
        self.content = "".join(parts)

    def _until_call(self, engine: Engine, messages: Sequence[Message],
                    params: GenerationParams, engine_kwargs: dict[str, Any]
                    ) -> Iterator[Chunk]:
        """Generate freely until the answer ends or starts a call (returns whether it did).
        Text is yielded once it cannot be the start of ``<tool_call>``; white space once
        text follows it (white space around a call is no content)."""
        halt = _EitherEvent(engine_kwargs.get("stop"))
        kwargs = {**engine_kwargs, "stop": halt}
        pending, shown, found = "", "", False
        last: Chunk | None = None
        for chunk in engine.stream(messages, params, **kwargs):
            if chunk.finish_reason is not None:
                last = chunk
            if found:
                continue  # the engine is stopping: wait for its last chunk (the usage)
            pending += chunk.text
            cut = pending.find(CALL_OPEN)
            if cut >= 0:
                found, pending = True, pending[:cut].rstrip()
                halt.set()
            if last or found:
                ready = pending
            else:  # what may start a call, and white space, wait for what follows
                ready = pending[:len(pending) - _partial_open(pending)].rstrip()
            if ready.strip() or (shown and ready):
                shown += ready
                pending = pending[len(ready):]
                yield Chunk(ready)
        self.usage = last.usage if last else None
        if found:
            self.content = shown
            return True
        self.content = shown + pending
        self.finish = last.finish_reason if last else "stop"
        yield Chunk(pending, finish_reason=self.finish, usage=self.usage)
        return False

    def _take_calls(self, text: str, reason: str | None) -> None:
        try:
            self.calls = parse_calls(text)
        except InvalidInputError as exc:
            self.calls = complete_calls(text) if reason == "length" else []
            if not self.calls:
                self.problems.append(str(exc))
                self.finish = reason or "stop"  # type: ignore[assignment]
                return
            log.info("the token limit cut a list of calls: %d finished calls kept",
                     len(self.calls))
        by_name = {f.name: f for f in self.functions}
        for call in self.calls:
            spec = by_name.get(call.name)
            if spec is None:
                self.problems.append(f"The model called {call.name!r}, which is not a tool.")
                continue
            error = _first_error(spec.parameters, call.arguments)
            if error:
                self.problems.append(f"Invalid arguments for {call.name}: {error}")
        self.finish = "tool_calls"


def with_tools_prompt(messages: Sequence[Message],
                      functions: Sequence[FunctionSpec]) -> list[Message]:
    """``messages`` with the tools prompt added to the system message (a new one first if
    there is none)."""
    prompt = tools_prompt(functions)
    out = [dict(m) for m in messages]
    if out and out[0]["role"] == "system":
        system = out[0]["content"].rstrip()
        out[0]["content"] = f"{system}\n\n{prompt}" if system else prompt
    else:
        out.insert(0, {"role": "system", "content": prompt})
    return out  # type: ignore[return-value]


def _partial_open(text: str) -> int:
    """Length of the longest tail of ``text`` that could still become ``<tool_call>``."""
    for n in range(min(len(text), len(CALL_OPEN) - 1), 0, -1):
        if CALL_OPEN.startswith(text[-n:]):
            return n
    return 0


def _collect(chunks: Iterator[Chunk]) -> tuple[str, str | None, Usage | None]:
    parts, reason, usage = [], None, None
    for chunk in chunks:
        parts.append(chunk.text)
        if chunk.finish_reason is not None:
            reason, usage = chunk.finish_reason, chunk.usage
    return "".join(parts), reason, usage


def _stopping_at_calls(params: GenerationParams) -> GenerationParams:
    if CALL_OPEN in params.stop:
        return params
    if len(params.stop) >= MAX_STOP_SEQUENCES:
        raise InvalidInputError(f"With tools, at most {MAX_STOP_SEQUENCES - 1} stop sequences "
                                "are allowed.")
    return replace(params, stop=(*params.stop, CALL_OPEN))


def _first_error(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> str | None:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is None:
        return None
    where = ".".join(str(p) for p in error.path)
    return f"{where}: {error.message}" if where else error.message


def usage_sum(a: Usage | None, b: Usage | None) -> Usage | None:
    """Two generations' usage as one: counts and times added; the first token is the
    first generation's, or comes after it."""
    if a is None or b is None:
        return a or b
    first = a.first_token_seconds if a.first_token_seconds is not None else (
        None if b.first_token_seconds is None else a.seconds + b.first_token_seconds)
    return Usage(a.prompt_tokens + b.prompt_tokens, a.completion_tokens + b.completion_tokens,
                 a.cached_tokens + b.cached_tokens, a.seconds + b.seconds, first)


class _EitherEvent(threading.Event):
    """Set when it is set, or when the caller's own stop flag is: lets the turn stop the
    free generation at ``<tool_call>`` without losing the caller's cancel."""

    def __init__(self, outer: threading.Event | None) -> None:
        super().__init__()
        self._outer = outer

    def is_set(self) -> bool:
        return super().is_set() or (self._outer is not None and self._outer.is_set())
