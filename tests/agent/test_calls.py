"""Function calling: specs, the call format, the grammar, and ToolTurn's control flow.

The control flow runs on a scripted engine (what the model says is fixed per test); the
slow tests run the real bundled model and check that every call it makes is well-formed.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence

import jsonschema
import pytest

from dialoop.agent.builtin import BUILTIN_TOOLS
from dialoop.agent.calls import (
    CALL_CLOSE,
    CALL_OPEN,
    FunctionSpec,
    RequestedCall,
    ToolTurn,
    calls_grammar,
    complete_calls,
    parse_calls,
    render_calls,
    to_model_messages,
    tools_prompt,
)
from dialoop.engine import Chunk, GenerationParams, Message, Usage
from dialoop.errors import InvalidInputError

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string"},
                                  "unit": {"type": "string", "enum": ["C", "F"]}},
                   "required": ["city"], "additionalProperties": False}}}
CALC = FunctionSpec.of_tool(next(t for t in BUILTIN_TOOLS if t.name == "calculator"))
FUNCTIONS = [FunctionSpec.from_openai(WEATHER), CALC]


class ReplayEngine:
    """Answers with the next of ``replies``, a few characters per chunk; honours the stop
    flag between chunks as the real engines do; logs every (messages, params)."""

    kind, name, context_window = "fake", "replay", 4096
    ends = "stop"  # the finish reason of an answer not stopped ("length": cut by the limit)

    def __init__(self, replies: Sequence[str]) -> None:
        self.replies = list(replies)
        self.asked: list[tuple[list[Message], GenerationParams]] = []

    def stream(self, messages: Sequence[Message], params: GenerationParams, *,
               adapter: str | None = None, cache_scope: str | None = None,
               stop: threading.Event | None = None) -> Iterator[Chunk]:
        self.asked.append((list(messages), params))
        text = self.replies.pop(0)
        pieces = [text[i:i + 3] for i in range(0, len(text), 3)]
        finish, n = self.ends, 0
        for piece in pieces:
            n += 1
            yield Chunk(piece)
            if stop is not None and stop.is_set():
                finish = "cancelled"
                break
        yield Chunk("", finish, Usage(10, n, 4, 0.5, 0.1))


def run(turn: ToolTurn, engine: ReplayEngine, **kwargs: object) -> list[Chunk]:
    return list(turn.stream(engine, [{"role": "user", "content": "hi"}], GenerationParams(),
                            **kwargs))


# -- specs and the format --------------------------------------------------------------


def test_from_openai_reads_a_function_and_refuses_what_openai_refuses() -> None:
    spec = FunctionSpec.from_openai(WEATHER)
    assert (spec.name, spec.description) == ("get_weather", "The weather in a city.")
    assert spec.parameters["required"] == ["city"]
    bare = FunctionSpec.from_openai({"type": "function", "function": {"name": "ping"}})
    assert bare.parameters == {"type": "object", "properties": {}}
    bad = [
        {"type": "code_interpreter"},
        {"type": "function"},
        {"type": "function", "function": {"name": "has space"}},
        {"type": "function", "function": {"name": "x" * 65}},
        {"type": "function", "function": {"name": "f", "parameters": {"type": "nonsense"}}},
        {"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}},
        {"type": "function", "function": {"name": "f", "strict": "yes"}},
    ]
    for tool in bad:
        with pytest.raises(InvalidInputError):
            FunctionSpec.from_openai(tool)


def test_requested_call_round_trips_through_openai_shape() -> None:
    call = RequestedCall.from_openai({"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Zürich"}'}})
    assert call.arguments == {"city": "Zürich"}
    d = call.to_openai()
    assert d["type"] == "function" and json.loads(d["function"]["arguments"]) == call.arguments
    assert RequestedCall.from_openai(d) == call
    fresh = RequestedCall.from_openai({"function": {"name": "f", "arguments": "{}"}})
    assert re.fullmatch(r"call_[0-9a-f]{24}", fresh.id)
    with pytest.raises(InvalidInputError, match="not JSON"):
        RequestedCall.from_openai({"function": {"name": "f", "arguments": "{oops"}})


def test_parse_calls_reads_the_format_and_explains_what_is_wrong() -> None:
    calls = parse_calls(f'{CALL_OPEN}[{{"name": "get_weather", "arguments": {{"city": "Oslo"}}}},'
                        f' {{"name": "calculator", "arguments": {{"expression": "1+1"}}}}]'
                        f'{CALL_CLOSE}')
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", {"city": "Oslo"}), ("calculator", {"expression": "1+1"})]
    assert len({c.id for c in calls}) == 2
    single = parse_calls(f'\n{CALL_OPEN}{{"name": "f", "arguments": {{}}}}{CALL_CLOSE}\n')
    assert single[0].name == "f"
    again = parse_calls(render_calls(calls))
    assert [(c.name, c.arguments) for c in again] == [(c.name, c.arguments) for c in calls]
    for text, problem in [("hello", "must start"), (f"{CALL_OPEN}[", "not closed"),
                          (f"{CALL_OPEN}[{{]{CALL_CLOSE}", "not JSON"),
                          (f"{CALL_OPEN}[]{CALL_CLOSE}", "no call"),
                          (f'{CALL_OPEN}[{{"arguments": {{}}}}]{CALL_CLOSE}', "name"),
                          (f'{CALL_OPEN}[{{"name": "f", "arguments": 3}}]{CALL_CLOSE}', "object"),
                          (f'{CALL_OPEN}[{{"name": "f"}}]{CALL_CLOSE} and more', "after")]:
        with pytest.raises(InvalidInputError, match=problem):
            parse_calls(text)


def test_tools_prompt_lists_every_function_as_json() -> None:
    prompt = tools_prompt(FUNCTIONS)
    listed = json.loads(prompt.split("<tools>")[1].split("</tools>")[0])
    assert [f["name"] for f in listed] == ["get_weather", "calculator"]
    assert listed[0]["parameters"]["properties"]["city"] == {"type": "string"}
    assert CALL_OPEN in prompt and CALL_CLOSE in prompt


def test_openai_history_becomes_rendered_calls_and_results() -> None:
    call = {"id": "call_a", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    out = to_model_messages([
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 3}'},
    ])
    assert out[1] == {"role": "assistant", "content": render_calls(
        [RequestedCall("call_a", "get_weather", {"city": "Oslo"})])}
    assert "get_weather" in out[2]["content"] and '\\"temp\\": 3' in out[2]["content"]
    with pytest.raises(InvalidInputError, match="tool_call_id"):
        to_model_messages([{"role": "tool", "tool_call_id": "nope", "content": "x"}])


def test_calls_grammar_is_valid_gbnf_naming_only_the_chosen_functions() -> None:
    pytest.importorskip("llama_cpp")
    from dialoop.engine.grammar import check_grammar

    both = calls_grammar(FUNCTIONS)
    check_grammar(both)
    assert '\\"get_weather\\"' in both and '\\"calculator\\"' in both
    only = calls_grammar(FUNCTIONS, only="calculator", parallel=False)
    assert '\\"get_weather\\"' not in only
    with pytest.raises(InvalidInputError):
        calls_grammar(FUNCTIONS, only="nope")


# -- ToolTurn's control flow -------------------------------------------------------------

A_CALL = f'{CALL_OPEN}[{{"name": "get_weather", "arguments": {{"city": "Oslo"}}}}]{CALL_CLOSE}'


def test_auto_plain_answer_streams_and_uses_no_grammar() -> None:
    engine = ReplayEngine(["It is <b>sunny</b> today."])
    turn = ToolTurn(FUNCTIONS, "auto")
    chunks = run(turn, engine)
    assert "".join(c.text for c in chunks) == "It is <b>sunny</b> today."
    assert len(chunks) > 3  # streamed, not in one piece
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage is not None
    assert (turn.finish, turn.calls, turn.content) == ("stop", [], "It is <b>sunny</b> today.")
    messages, params = engine.asked[0]
    assert len(engine.asked) == 1 and params.grammar is None
    assert messages[0]["role"] == "system" and "<tools>" in messages[0]["content"]


def test_auto_call_is_generated_again_under_the_grammar_and_not_shown() -> None:
    engine = ReplayEngine([f"  {CALL_OPEN}[{{\"name\": \"get_wea", A_CALL])
    turn = ToolTurn(FUNCTIONS, "auto")
    chunks = run(turn, engine)
    assert "".join(c.text for c in chunks) == ""  # neither the white space nor the call
    assert turn.finish == "tool_calls" and turn.content == ""
    assert [(c.name, c.arguments) for c in turn.calls] == [("get_weather", {"city": "Oslo"})]
    assert turn.problems == []
    (first, free), (second, constrained) = engine.asked
    assert free.grammar is None and constrained.grammar is not None
    assert first == second  # the same messages: the engine reuses the cached prompt
    assert chunks[-1].finish_reason == "stop"  # the engine's reason, summed usage
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 20
    assert chunks[-1].usage.completion_tokens == turn.usage.completion_tokens  # type: ignore[union-attr]


def test_auto_text_before_a_call_is_the_content_and_streams() -> None:
    engine = ReplayEngine([f"Let me check.\n{CALL_OPEN}[{{", A_CALL])
    turn = ToolTurn(FUNCTIONS, "auto")
    text = "".join(c.text for c in run(turn, engine))
    assert text.strip() == "Let me check." and CALL_OPEN[:2] not in text
    assert turn.content == "Let me check." and turn.finish == "tool_calls"


def test_auto_stops_the_free_generation_at_the_call_and_keeps_the_callers_stop() -> None:
    engine = ReplayEngine([CALL_OPEN + "x" * 300, A_CALL])
    outer = threading.Event()
    turn = ToolTurn(FUNCTIONS, "auto")
    run(turn, engine, stop=outer)
    assert turn.usage is not None and turn.usage.completion_tokens < 10 + 30
    assert not outer.is_set()  # the turn's own stop, not the caller's

    outer.set()  # a caller that cancels: the free generation ends "cancelled", no call
    engine = ReplayEngine(["Hello there, a long answer"])
    cancelled = ToolTurn(FUNCTIONS, "auto")
    chunks = run(cancelled, engine, stop=outer)
    assert cancelled.finish == "cancelled" and chunks[-1].finish_reason == "cancelled"


@pytest.mark.parametrize("choice", ["required", "get_weather"])
def test_required_and_named_generate_under_the_grammar_at_once(choice: str) -> None:
    engine = ReplayEngine([A_CALL])
    turn = ToolTurn(FUNCTIONS, choice, parallel=False)
    chunks = run(turn, engine)
    assert [c.text for c in chunks] == [""] and turn.finish == "tool_calls"
    grammar = engine.asked[0][1].grammar
    assert grammar is not None and ('\\"calculator\\"' in grammar) == (choice == "required")


def test_none_is_plain_generation_with_the_same_prompt_and_calls_cut_off() -> None:
    engine = ReplayEngine(["Just text."])
    turn = ToolTurn(FUNCTIONS, "none")
    assert "".join(c.text for c in run(turn, engine)) == "Just text."
    messages, params = engine.asked[0]
    assert turn.finish == "stop" and params.grammar is None and params.stop == (CALL_OPEN,)
    assert "<tools>" in messages[0]["content"]  # the prompt of the other choices: cached
    bare = ReplayEngine(["Hi."])
    list(ToolTurn([], "none").stream(bare, [{"role": "user", "content": "hi"}],
                                     GenerationParams()))
    assert bare.asked[0] == ([{"role": "user", "content": "hi"}], GenerationParams())


def test_calls_that_do_not_validate_are_recorded() -> None:
    bad = f'{CALL_OPEN}[{{"name": "get_weather", "arguments": {{"unit": "K"}}}}, ' \
          f'{{"name": "launch", "arguments": {{}}}}]{CALL_CLOSE}'
    turn = ToolTurn(FUNCTIONS, "required")
    run(turn, ReplayEngine([bad]))
    assert len(turn.calls) == 2 and len(turn.problems) == 2
    assert "get_weather" in turn.problems[0] and "launch" in turn.problems[1]
    cut = ToolTurn(FUNCTIONS, "required")
    run(cut, ReplayEngine([A_CALL[:20]]))
    assert cut.calls == [] and cut.finish == "stop" and "not closed" in cut.problems[0]


def test_a_call_list_cut_by_the_token_limit_keeps_its_finished_calls() -> None:
    first = '{"name": "calculator", "arguments": {"expression": "3*3600"}}'
    text = f'{CALL_OPEN}[{first}, {first}, {{"name": "calculator", "arguments": {{"expr'
    assert [c.arguments for c in complete_calls(text)] == [{"expression": "3*3600"}] * 2
    assert complete_calls(f'{CALL_OPEN}[{{"name": "calc') == []
    assert complete_calls("plain text") == []
    engine = ReplayEngine([text])
    engine.ends = "length"
    turn = ToolTurn(FUNCTIONS, "required")
    run(turn, engine)
    assert len(turn.calls) == 2 and turn.problems == [] and turn.finish == "tool_calls"
    nothing = ReplayEngine([f'{CALL_OPEN}[{{"name": "calc'])
    nothing.ends = "length"
    cut = ToolTurn(FUNCTIONS, "required")
    run(cut, nothing)  # not one call finished: a problem, the turn ends by the limit
    assert cut.calls == [] and cut.finish == "length" and "not closed" in cut.problems[0]
    stopped = ToolTurn(FUNCTIONS, "required")
    run(stopped, ReplayEngine([text]))  # cut without the limit: not a list to salvage
    assert stopped.calls == [] and stopped.problems


def test_choice_must_name_a_given_function() -> None:
    with pytest.raises(InvalidInputError, match="tool_choice"):
        ToolTurn(FUNCTIONS, "get_time")
    with pytest.raises(InvalidInputError, match="at least one"):
        ToolTurn([], "required")
    with pytest.raises(InvalidInputError, match="same name"):
        ToolTurn([CALC, CALC])


# -- the real model ------------------------------------------------------------------------

QUESTIONS = ["What is 1234 times 5678?", "What's the weather like in Lisbon, in Celsius?",
             "Compute (17 + 4) * 3 and tell me the weather in Paris."]


@pytest.mark.slow
@pytest.mark.parametrize("choice", ["required", "calculator", "get_weather", "auto"])
def test_real_model_calls_parse_and_validate(llama_engine, choice: str) -> None:  # type: ignore[no-untyped-def]
    """Every call parses and validates. With "auto" the bundled 135M model rarely starts a
    call by itself; then its answer must be plain text, streamed, with no call text in it."""
    schemas = {f.name: f.parameters for f in FUNCTIONS}
    for question in QUESTIONS:
        turn = ToolTurn(FUNCTIONS, choice)
        chunks = list(turn.stream(llama_engine, [{"role": "user", "content": question}],
                                  GenerationParams(max_tokens=48)))
        if choice == "auto" and turn.finish != "tool_calls":
            assert turn.content.strip() and CALL_OPEN not in turn.content
            assert "".join(c.text for c in chunks) == turn.content
            continue
        assert turn.finish == "tool_calls" and turn.problems == [], (question, turn.problems)
        for call in turn.calls:
            jsonschema.validate(call.arguments, schemas[call.name])
            assert choice in ("required", "auto", call.name)
