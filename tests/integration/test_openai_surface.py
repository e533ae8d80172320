"""The OpenAI surface beyond plain chat, through the official client against a real server:
function calling, structured outputs, logprobs, n, stop, /v1/completions and /v1/responses.

What is asserted is what dialoop controls: shapes, that calls and JSON always parse and
validate (grammar-constrained), that stored turns and ids line up; never the model's words.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import jsonschema
import openai
import pytest

from dialoop.assistant import Assistant
from dialoop.serve import create_app
from dialoop.serve.server import RunningServer, background_server
from tests.integration.openai_clients import MODEL, official

pytestmark = pytest.mark.slow

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "minLength": 1}},
           "required": ["city"], "additionalProperties": False}
TIME = {"type": "object", "properties": {"timezone": {"type": "string"}},
        "required": ["timezone"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description":
                                           "The weather now in a city.", "parameters": WEATHER}},
         {"type": "function", "function": {"name": "get_time", "description":
                                           "The time now in a time zone.", "parameters": TIME}}]
PLACE = {"type": "object", "additionalProperties": False, "required": ["city", "country"],
         "properties": {"city": {"type": "string"}, "country": {"type": "string"}}}
ASK = [{"role": "user", "content": "What's the weather in Paris right now?"}]


@pytest.fixture
def server(assistant: Assistant) -> Iterator[RunningServer]:
    with background_server(create_app(assistant)) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return official(server.url)


def _turns(assistant: Assistant, session_id: str):  # type: ignore[no-untyped-def]
    return assistant.parts.sessions.turns(assistant.parts.sessions.get(session_id, "local"))


def test_tool_call_round_trip_is_stored_and_answered(client: openai.OpenAI,
                                                     assistant: Assistant) -> None:
    first = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS,
                                           tool_choice="required", max_tokens=64)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and all(c.type == "function" for c in calls)
    for call in calls:  # generated under the schema's grammar: always parses and validates
        schema = WEATHER if call.function.name == "get_weather" else TIME
        jsonschema.validate(json.loads(call.function.arguments), schema)
        assert call.id.startswith("call_")
    info = first.dialoop  # type: ignore[attr-defined]
    stored = _turns(assistant, info["session_id"])[-1]
    assert stored.trace["tools"]["calls"] == [c.model_dump() for c in calls]

    history = [*ASK, choice.message.model_dump(exclude_none=True),
               *({"role": "tool", "tool_call_id": c.id, "content": '{"sky": "sunny", "c": 21}'}
                 for c in calls)]
    second = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS,
                                            tool_choice="none", max_tokens=48)
    assert second.choices[0].finish_reason in ("stop", "length")
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls
    turns = _turns(assistant, second.dialoop["session_id"])  # type: ignore[attr-defined]
    assert [t.role for t in turns] == ["user", "assistant", *["tool"] * len(calls), "assistant"]
    assert [t.trace["tool_call_id"] for t in turns if t.role == "tool"] == [c.id for c in calls]
    assert second.dialoop["user_turn_id"] == turns[-2].id  # type: ignore[attr-defined]


def test_named_tool_choice_calls_that_function_once(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, parallel_tool_calls=False, max_tokens=64,
        tool_choice={"type": "function", "function": {"name": "get_time"}})
    calls = out.choices[0].message.tool_calls
    assert calls is not None and [c.function.name for c in calls] == ["get_time"]
    jsonschema.validate(json.loads(calls[0].function.arguments), TIME)


def test_streamed_tool_calls_assemble_into_valid_calls(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS,
                                            tool_choice="required", stream=True, max_tokens=64)
    parts: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                part = parts.setdefault(delta.index, {"name": "", "arguments": "", "id": ""})
                part["id"] += delta.id or ""
                part["name"] += delta.function.name or ""
                part["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls" and parts
    for part in parts.values():
        assert part["name"] in ("get_weather", "get_time") and part["id"].startswith("call_")
        json.loads(part["arguments"])


def test_tool_results_must_answer_the_calls_asked_for(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="follow the assistant message"):
        client.chat.completions.create(model=MODEL, messages=[
            *ASK, {"role": "tool", "tool_call_id": "call_x", "content": "sunny"}])
    with pytest.raises(openai.BadRequestError, match="not one of the tools"):
        client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice={
            "type": "function", "function": {"name": "nope"}})


def test_json_schema_answer_validates_and_json_object_parses(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL, max_tokens=96,
        messages=[{"role": "user", "content": "Which city is the capital of Japan?"}],
        response_format={"type": "json_schema", "json_schema": {
            "name": "place", "schema": PLACE, "strict": True}})
    assert out.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(out.choices[0].message.content or ""), PLACE)

    out = client.chat.completions.create(
        model=MODEL, max_tokens=96, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Describe a cat in JSON."}])
    if out.choices[0].finish_reason == "stop":  # a cut answer is reported as "length"
        assert isinstance(json.loads(out.choices[0].message.content or ""), dict)


def test_an_invalid_schema_is_refused_before_anything_is_stored(
        client: openai.OpenAI, assistant: Assistant) -> None:
    before = len(assistant.parts.sessions.list("local"))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=ASK, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}})
    assert len(assistant.parts.sessions.list("local")) == before


def test_logprobs_describe_the_answer_token_by_token(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL, max_tokens=12, logprobs=True, top_logprobs=3,
        messages=[{"role": "user", "content": "Name a colour."}])
    choice = out.choices[0]
    tokens = choice.logprobs.content  # type: ignore[union-attr]
    assert tokens is not None and len(tokens) == out.usage.completion_tokens  # type: ignore[union-attr]
    assert "".join(t.token for t in tokens) == choice.message.content
    for t in tokens:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        tops = [a.logprob for a in t.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        assert t.top_logprobs[0].token == t.token  # greedy: the chosen token is the best
        assert math.isclose(t.top_logprobs[0].logprob, t.logprob, abs_tol=1e-6)
    assert sum(math.exp(a.logprob) for a in tokens[0].top_logprobs) <= 1.0 + 1e-6


def test_several_choices_stops_and_penalties(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL, max_tokens=8, n=3, temperature=1.0, seed=7, frequency_penalty=0.5,
        presence_penalty=0.5, stop=["\n", "!!", "###", "END"],
        messages=[{"role": "user", "content": "Say something."}])
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert out.usage is not None and out.usage.completion_tokens <= 3 * 8
    for choice in out.choices:
        assert "\n" not in (choice.message.content or "")
    with pytest.raises(openai.BadRequestError, match="stop"):
        client.chat.completions.create(model=MODEL, messages=ASK, stop=list("abcde"))
    with pytest.raises(openai.BadRequestError, match="at most"):
        client.chat.completions.create(model=MODEL, messages=ASK, n=99)


def test_legacy_completions_answer_and_store_the_prompt(client: openai.OpenAI,
                                                        assistant: Assistant) -> None:
    out = client.completions.create(model=MODEL, prompt="Name a primary colour.",
                                    max_tokens=10, logprobs=2)
    choice = out.choices[0]
    assert choice.text and choice.logprobs is not None
    assert "".join(choice.logprobs.tokens or []) == choice.text
    turns = _turns(assistant, out.dialoop["session_id"])  # type: ignore[attr-defined]
    assert [(t.role, t.content) for t in turns] == [("user", "Name a primary colour."),
                                                    ("assistant", choice.text)]
    with pytest.raises(openai.BadRequestError, match="echo"):
        client.completions.create(model=MODEL, prompt="x", echo=True)


def test_responses_text_continuation_and_stream(client: openai.OpenAI,
                                                assistant: Assistant) -> None:
    first = client.responses.create(model=MODEL, input="What is the capital of Japan?",
                                    instructions="Answer in one sentence.",
                                    max_output_tokens=32)
    assert first.output_text and first.status in ("completed", "incomplete")
    second = client.responses.create(model=MODEL, input="And of France?",
                                     previous_response_id=first.id, max_output_tokens=32)
    assert second.output_text
    assert second.dialoop["session_id"] == first.dialoop["session_id"]  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError, match="latest answer"):
        client.responses.create(model=MODEL, input="again", previous_response_id=first.id)

    with client.responses.stream(model=MODEL, input="Say hello.", max_output_tokens=16) as s:
        events = list(s)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds
    assert kinds[-1] in ("response.completed", "response.incomplete")  # 16 tokens may cut it
    final = events[-1].response  # type: ignore[union-attr]
    assert final.id == events[0].response.id  # type: ignore[union-attr]
    turn = _turns(assistant, final.dialoop["session_id"])[-1]  # type: ignore[attr-defined]
    assert (turn.role, turn.content) == ("assistant", final.output_text)


def test_responses_function_calls_and_structured_output(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "name": t["function"]["name"],  # type: ignore[index]
              "description": t["function"]["description"],  # type: ignore[index]
              "parameters": t["function"]["parameters"]} for t in TOOLS]  # type: ignore[index]
    first = client.responses.create(model=MODEL, input=ASK[0]["content"], tools=tools,
                                    tool_choice="required", max_output_tokens=64)
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls
    for call in calls:
        json.loads(call.arguments)
    done = client.responses.create(
        model=MODEL, previous_response_id=first.id, max_output_tokens=32,
        input=[{"type": "function_call_output", "call_id": c.call_id, "output": "sunny"}
               for c in calls])
    assert done.output_text

    shaped = client.responses.create(
        model=MODEL, input="Which city is the capital of Japan?", max_output_tokens=96,
        text={"format": {"type": "json_schema", "name": "place", "schema": PLACE,
                         "strict": True}})
    jsonschema.validate(json.loads(shaped.output_text), PLACE)
    with pytest.raises(openai.BadRequestError, match="web_search"):
        client.responses.create(model=MODEL, input="hi", tools=[{"type": "web_search"}])


def test_agent_turn_calls_dialoops_own_tools_and_explains_them(
        client: openai.OpenAI, assistant: Assistant, monkeypatch: pytest.MonkeyPatch) -> None:
    from dialoop.cli.dialogue import format_trace

    # The bundled model rarely chooses a call itself: make the first step a call.
    monkeypatch.setattr(assistant, "settings",
                        assistant.settings.model_copy(update={"agent_first": "required"}))
    out = client.chat.completions.create(
        model=MODEL, max_tokens=48, extra_body={"dialoop": {"agent": True}},
        messages=[{"role": "user", "content": "What is 17 times 23?"}])
    assert out.choices[0].message.content
    assert not out.choices[0].message.tool_calls  # dialoop ran them: the client sees none
    turn = _turns(assistant, out.dialoop["session_id"])[-1]  # type: ignore[attr-defined]
    steps = turn.trace["tools"]["agent_steps"]
    assert steps and steps[0]["step"] == 1
    assert steps[0]["name"] in {"calculator", "current_time", "knowledge_query",
                                "document_search"}
    assert "tool call    step 1:" in format_trace(turn)
    with pytest.raises(openai.BadRequestError, match="own tools"):
        client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS,
                                       extra_body={"dialoop": {"agent": True}})
