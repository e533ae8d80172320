"""What the OpenAI endpoints share: tools, structured output and log-probabilities.

Requests name these the same way in chat completions and the Responses API (with small
differences of nesting, resolved by each endpoint); this module turns them into what
the assistant takes:

- ``tools`` + ``tool_choice`` + ``parallel_tool_calls`` → a :class:`~dialoop.agent.calls.ToolTurn`,
  whose calls are generated under a grammar made from each function's JSON Schema, so
  they always parse and validate;
- ``response_format`` (``json_object``, ``json_schema``) → a GBNF grammar on the
  generation parameters plus an instruction naming the schema;
- the engine's :class:`~dialoop.engine.TokenLogprob` → OpenAI's ``logprobs`` objects.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dialoop.engine import TokenLogprob
from dialoop.errors import InvalidInputError

__all__ = ["FunctionDef", "JsonSchemaFormat", "ResponseFormat", "ToolDef", "structured",
           "tool_turn", "logprob_content"]

MAX_TOOLS = 128  # OpenAI's own limit
MAX_TOP_LOGPROBS = 20


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(BaseModel):
    """A tool in a chat completion request: ``{"type": "function", "function": {...}}``."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: FunctionDef


class NamedChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: dict[str, str]

    @field_validator("function")
    @classmethod
    def _has_name(cls, value: dict[str, str]) -> dict[str, str]:
        if not value.get("name"):
            raise ValueError('a named tool choice is {"type": "function", "function": '
                             '{"name": NAME}}')
        return value


ToolChoice = Literal["none", "auto", "required"] | NamedChoice


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


def choice_name(choice: ToolChoice | None) -> str:
    """``tool_choice`` as the tool turn takes it: "auto", "none", "required" or a name."""
    if choice is None:
        return "auto"
    return choice if isinstance(choice, str) else choice.function["name"]


def tool_turn(
    tools: Sequence[FunctionDef] | None, choice: ToolChoice | None, parallel: bool | None,
) -> Any:
    """The tool turn a request asks for (None when it offers no tools)."""
    from dialoop.agent.calls import FunctionSpec, ToolTurn

    if not tools:
        if choice not in (None, "none", "auto"):
            raise InvalidInputError("tool_choice names a tool, but the request has no tools.")
        return None
    if len(tools) > MAX_TOOLS:
        raise InvalidInputError(f"At most {MAX_TOOLS} tools per request, got {len(tools)}.")
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise InvalidInputError("Two tools have the same name: rename one.")
    name = choice_name(choice)
    if name not in ("auto", "none", "required") and name not in names:
        raise InvalidInputError(f"tool_choice names {name!r}, which is not one of the tools "
                                f"({', '.join(names)}).")
    specs = [FunctionSpec.from_openai({"type": "function", "function": t.model_dump(
        exclude_none=True)}) for t in tools]
    return ToolTurn(specs, name, parallel=parallel is not False)


def structured(fmt: ResponseFormat | None) -> tuple[str | None, str | None]:
    """(GBNF grammar, instruction for the system prompt) for a ``response_format``."""
    from dialoop.engine.grammar import json_grammar

    if fmt is None or fmt.type == "text":
        return None, None
    if fmt.type == "json_object":
        return json_grammar(None), "Answer with a single JSON object and nothing else."
    if fmt.json_schema is None:
        raise InvalidInputError('response_format type "json_schema" needs a "json_schema" '
                                'object: {"name": ..., "schema": {...}, "strict": true}.')
    schema = fmt.json_schema.schema_ or {"type": "object"}
    described = f" ({fmt.json_schema.description})" if fmt.json_schema.description else ""
    instruction = (f"Answer with JSON only: a {fmt.json_schema.name}{described} matching this "
                   f"JSON Schema:\n{json.dumps(schema, ensure_ascii=False)}")
    return json_grammar(schema), instruction


def check_top_logprobs(logprobs: bool | None, top: int | None) -> int | None:
    """The engine's ``logprobs`` setting for OpenAI's ``logprobs`` and ``top_logprobs``."""
    if top is not None and not logprobs:
        raise InvalidInputError("top_logprobs needs logprobs: true.")
    if not logprobs:
        return None
    if top is not None and not 0 <= top <= MAX_TOP_LOGPROBS:
        raise InvalidInputError(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}.")
    return top or 0


def logprob_content(tokens: Sequence[TokenLogprob]) -> list[dict[str, Any]]:
    """OpenAI's ``logprobs.content`` list for the engine's token log-probabilities."""
    return [{"token": t.token, "logprob": t.logprob, "bytes": list(t.bytes),
             "top_logprobs": [{"token": tok, "logprob": lp, "bytes": list(b)}
                              for tok, lp, b in t.top]}
            for t in tokens]


def token_ids(bias: dict[str, float] | None) -> dict[int, float]:
    """``logit_bias`` with its keys (token ids as strings, as JSON has them) as integers."""
    out: dict[int, float] = {}
    for key, value in (bias or {}).items():
        try:
            out[int(key)] = value
        except ValueError:
            raise InvalidInputError(f"logit_bias keys are token ids, not {key!r}.") from None
    return out
