"""The tool registry: validated arguments, and failures that become messages, not crashes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dialoop.agent.tools import Tool, ToolContext, ToolError, ToolRegistry, load_callable
from dialoop.errors import ConfigError

SCHEMA = {
    "type": "object",
    "properties": {"order_number": {"type": "integer", "minimum": 1000}},
    "required": ["order_number"],
    "additionalProperties": False,
}
CONTEXT = ToolContext(user="ann", session_id="s1")


def lookup(order_number: int, *, context: ToolContext) -> dict[str, object]:
    if order_number == 9999:
        raise ToolError("There is no order 9999.")
    if order_number == 6666:
        raise RuntimeError("database exploded")
    return {"order_number": order_number, "status": "shipped", "asked_by": context.user}


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([Tool("lookup_order", lookup, SCHEMA, "Look up an order.")])


def test_a_valid_call_returns_the_result_and_passes_the_context(registry: ToolRegistry) -> None:
    call = registry.call("lookup_order", {"order_number": 5521}, CONTEXT)
    assert call.ok
    assert call.result == {"order_number": 5521, "status": "shipped", "asked_by": "ann"}
    assert call.to_dict()["result"]["status"] == "shipped"


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"order_number": "abc"}, "order_number: 'abc' is not of type 'integer'"),
    ({"order_number": 12}, "order_number: 12 is less than the minimum of 1000"),
    ({"order_number": 5521, "extra": 1}, "Additional properties are not allowed"),
])
def test_invalid_arguments_become_a_clear_message_and_a_logged_error(
    registry: ToolRegistry, arguments: dict, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="dialoop.agent.tools"):
        call = registry.call("lookup_order", arguments, CONTEXT)
    assert not call.ok
    assert call.error.startswith("Invalid arguments for lookup_order")
    assert expected in call.error
    assert any("invalid arguments" in r.message for r in caplog.records)


def test_a_missing_argument_is_named(registry: ToolRegistry) -> None:
    call = registry.call("lookup_order", {}, CONTEXT)
    assert not call.ok and call.missing == ("order_number",)
    assert "'order_number' is a required property" in call.error


def test_a_tool_error_is_shown_as_the_tool_worded_it(registry: ToolRegistry) -> None:
    call = registry.call("lookup_order", {"order_number": 9999}, CONTEXT)
    assert not call.ok and call.error == "There is no order 9999."


def test_an_unexpected_exception_is_logged_with_its_trace_and_never_raised(
    registry: ToolRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="dialoop.agent.tools"):
        call = registry.call("lookup_order", {"order_number": 6666}, CONTEXT)
    assert not call.ok
    assert call.error == "The lookup_order tool failed unexpectedly; the error was logged."
    assert "database exploded" not in call.error  # internals stay in the log
    record = next(r for r in caplog.records if r.message == "tool lookup_order failed")
    assert record.exc_info is not None and "database exploded" in str(record.exc_info[1])


def test_an_unknown_tool_is_a_message(registry: ToolRegistry) -> None:
    call = registry.call("cancel_order", {}, CONTEXT)
    assert not call.ok and "no tool named 'cancel_order'" in call.error


def test_a_tool_without_a_context_parameter_gets_none() -> None:
    registry = ToolRegistry([Tool("double", lambda x: 2 * x,
                                  {"type": "object", "properties": {"x": {"type": "number"}}})])
    assert registry.call("double", {"x": 21}, CONTEXT).result == 42


def test_an_invalid_schema_or_a_duplicate_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="invalid parameter schema"):
        Tool("bad", lookup, {"type": "nonsense"})
    registry = ToolRegistry([Tool("t", lookup)])
    with pytest.raises(ConfigError, match="Two tools are named 't'"):
        registry.add(Tool("t", lookup))


def test_load_callable_from_a_module_or_a_file(tmp_path: Path) -> None:
    assert load_callable("json:dumps")([1]) == "[1]"
    (tmp_path / "mytools.py").write_text("def hello(name):\n    return 'hi ' + name\n")
    assert load_callable("mytools.py:hello", base=tmp_path)("bo") == "hi bo"
    with pytest.raises(ConfigError, match="has no function 'nope'"):
        load_callable("mytools.py:nope", base=tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_callable("missing.py:f", base=tmp_path)
    with pytest.raises(ConfigError, match="does not name a function"):
        load_callable("json.dumps")


def test_the_builtin_clock_tells_the_time_and_refuses_unknown_zones() -> None:
    from dialoop.agent.builtin import BUILTIN_TOOLS

    registry = ToolRegistry(list(BUILTIN_TOOLS))
    call = registry.call("current_time", {"timezone": "America/New_York"}, CONTEXT)
    assert call.ok and set(call.result) == {"timezone", "date", "time", "weekday"}
    bad = registry.call("current_time", {"timezone": "Mars/Olympus"}, CONTEXT)
    assert not bad.ok and "'Mars/Olympus' is not a time zone" in bad.error
