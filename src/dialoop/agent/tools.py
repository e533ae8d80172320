"""A registry of tools: Python callables whose arguments are checked against a JSON schema.

    registry = ToolRegistry()
    registry.add(Tool("lookup_order", lookup_order, parameters={
        "type": "object",
        "properties": {"order_number": {"type": "integer"}},
        "required": ["order_number"],
    }))
    call = registry.call("lookup_order", {"order_number": 5521}, context)
    call.ok, call.result, call.error

:meth:`ToolRegistry.call` never raises for what a tool or its caller got wrong:
invalid arguments, an unknown tool and an exception inside the tool all come back
as a :class:`ToolCall` with ``ok=False`` and an ``error`` fit to show the user.
Invalid arguments and unknown tools are logged as errors, an exception inside a
tool as an error with its stack trace. A tool that wants to tell
the user something specific ("there is no order 9999") raises :class:`ToolError`.

A tool that declares a keyword-only parameter ``context`` receives a
:class:`ToolContext` (who is asking, in which session, where dialoop keeps its
data), so that, for example, a tool can refuse to show one user another's order.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from dialoop.errors import ConfigError, ToolError

__all__ = ["Tool", "ToolCall", "ToolContext", "ToolError", "ToolRegistry", "load_callable"]

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 4000  # a result is shown to the model and stored in the trace


@dataclass(frozen=True)
class ToolContext:
    """What a tool may know about the call besides its arguments."""

    user: str
    session_id: str | None = None
    home: Path | None = None  # DIALOOP_HOME: where a tool may keep its own data


@dataclass(frozen=True)
class Tool:
    name: str
    function: Callable[..., Any]
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    description: str = ""

    def __post_init__(self) -> None:
        try:
            jsonschema.Draft202012Validator.check_schema(self.parameters)
        except jsonschema.SchemaError as exc:
            raise ConfigError(
                f"Tool {self.name!r} has an invalid parameter schema: {exc.message}"
            ) from None

    @property
    def wants_context(self) -> bool:
        try:
            params = inspect.signature(self.function).parameters
        except (TypeError, ValueError):  # some builtins have no signature
            return False
        p = params.get("context")
        return p is not None and p.kind is inspect.Parameter.KEYWORD_ONLY


@dataclass(frozen=True)
class ToolCall:
    """The outcome of one call: a JSON-able result, or an error to show the user."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    result: Any = None
    error: str | None = None
    missing: tuple[str, ...] = ()  # required arguments that were not given
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "arguments": self.arguments, "ok": self.ok,
                               "seconds": round(self.seconds, 4)}
        if self.ok:
            out["result"] = self.result
        else:
            out["error"] = self.error
            if self.missing:
                out["missing"] = list(self.missing)
        return out


class ToolRegistry:
    """The tools one assistant may call, by name."""

    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools or []:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ConfigError(f"Two tools are named {tool.name!r}: rename one.")
        self._tools[tool.name] = tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._tools.values())

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def call(self, name: str, arguments: Mapping[str, Any], context: ToolContext) -> ToolCall:
        """Validate ``arguments`` and run the tool; never raises for a bad call or tool."""
        args = dict(arguments)
        tool = self._tools.get(name)
        if tool is None:
            log.error("call of unknown tool %r", name)
            return ToolCall(name, args, False, error=f"There is no tool named {name!r}.")
        problem, missing = _validate(tool, args)
        if problem:
            log.error("tool %s: invalid arguments: %s", name, problem)
            return ToolCall(name, args, False, error=problem, missing=missing)
        extra = {"context": context} if tool.wants_context else {}
        start = time.perf_counter()
        try:
            result = tool.function(**args, **extra)
        except ToolError as exc:  # an expected outcome ("no such order"), not a fault
            log.info("tool %s refused: %s", name, exc)
            return ToolCall(name, args, False, error=str(exc),
                            seconds=time.perf_counter() - start)
        except Exception:  # a tool is user code: any failure becomes a message, not a crash
            log.exception("tool %s failed", name)
            return ToolCall(name, args, False, seconds=time.perf_counter() - start,
                            error=f"The {name} tool failed unexpectedly; the error was logged.")
        return ToolCall(name, args, True, result=_jsonable(name, result),
                        seconds=time.perf_counter() - start)


def _validate(tool: Tool, args: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """A one-line description of what is wrong with ``args`` (None if nothing), and
    which required arguments are missing."""
    validator = jsonschema.Draft202012Validator(tool.parameters,
                                                format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(args), key=lambda e: list(e.path))
    if not errors:
        return None, ()
    missing = tuple(
        name for e in errors if e.validator == "required" and not e.path
        for name in e.validator_value if name not in args
    )
    first = errors[0]
    where = ".".join(str(p) for p in first.path)
    detail = f"{where}: {first.message}" if where else first.message
    return f"Invalid arguments for {tool.name}: {detail}.", missing


def _jsonable(name: str, result: Any) -> Any:
    """The result as JSON-able data (stored in the trace), cut if it is very long."""
    try:
        text = json.dumps(result, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = json.dumps(str(result), ensure_ascii=False)
    if len(text) > MAX_RESULT_CHARS:
        log.warning("tool %s returned %d characters; keeping %d", name, len(text),
                    MAX_RESULT_CHARS)
        return text[:MAX_RESULT_CHARS] + "…"
    return json.loads(text)


def load_callable(spec: str, *, base: Path | None = None) -> Callable[..., Any]:
    """The function named by ``spec``: ``package.module:function`` or ``file.py:function``.

    A file path is taken relative to ``base`` (the domain file's folder).
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(
            f"{spec!r} does not name a function: write 'module:function' or 'file.py:function'."
        )
    if target.endswith(".py"):
        path = Path(target) if base is None else base / target
        module = _load_file(path.resolve())
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(f"Cannot import {target!r} for {spec!r}: {exc}") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise ConfigError(f"{target} has no function {attr!r} (from {spec!r}).")
    return function


def _load_file(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"The tool file {path} does not exist.")
    # One module object per file, so that two domains naming the same file share it.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    name = f"dialoop_tools_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"Cannot load the tool file {path}: {exc}") from None
    return module
