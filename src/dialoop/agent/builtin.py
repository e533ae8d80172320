"""Tools every domain may use, each with its parameter schema.

    tools:
      current_time:
        function: dialoop.agent.builtin:current_time
        parameters: {type: object, properties: {timezone: {type: string}}}

:data:`BUILTIN_TOOLS` holds the tools that need nothing (``current_time``,
``calculator``) as ready :class:`~dialoop.agent.tools.Tool` objects;
:func:`builtin_tools` adds the knowledge tools (``knowledge_query``,
``document_search``), which read the asking user's view of the knowledge only: the
global facts and documents plus their own, never another user's.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialoop.agent.tools import Tool, ToolContext, ToolError

if TYPE_CHECKING:
    from dialoop.knowledge import KnowledgeBase

__all__ = ["BUILTIN_TOOLS", "builtin_tools", "calculator", "current_time"]


def current_time(timezone: str = "UTC") -> dict[str, Any]:
    """The date, time and weekday now in ``timezone`` (an IANA name like "America/New_York")."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"{timezone!r} is not a time zone I know; try e.g. 'Europe/Paris'.") \
            from None
    now = datetime.now(zone)
    return {"timezone": timezone, "date": now.date().isoformat(),
            "time": now.strftime("%H:%M"), "weekday": now.strftime("%A")}


# -- calculator -----------------------------------------------------------------------

MAX_EXPRESSION_CHARS = 300
MAX_DIGITS = 400  # an integer result longer than this is refused (10**400 is plenty)

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: pow, ast.BitXor: pow,  # "2^10" means a power on every calculator
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos, ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max,
    "floor": math.floor, "ceil": math.ceil, "exp": math.exp, "log": math.log,
    "log10": math.log10, "log2": math.log2, "sin": math.sin, "cos": math.cos,
    "tan": math.tan, "factorial": math.factorial,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def calculator(expression: str) -> dict[str, Any]:
    """The value of an arithmetic ``expression`` ("(17 + 4) * 3", "sqrt(2) / 2", "2^10").

    Parsed with :mod:`ast` and evaluated node by node over a whitelist of operators and
    functions: nothing else (names, attributes, calls of anything else) runs.
    """
    text = expression.strip().replace("×", "*").replace("÷", "/")
    if not text:
        raise ToolError("The expression is empty: give one like '(17 + 4) * 3'.")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"The expression is longer than {MAX_EXPRESSION_CHARS} characters.")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"{expression!r} is not an arithmetic expression I can read; "
                        "write e.g. '(17 + 4) * 3' (digits without thousands commas).") from None
    try:
        value = _eval(tree.body)
    except ZeroDivisionError:
        raise ToolError("Division by zero.") from None
    except (ValueError, OverflowError, TypeError) as exc:
        raise ToolError(f"Cannot compute {expression!r}: {exc}.") from None
    return {"expression": expression, "result": _tidy(value)}


def _eval(node: ast.AST) -> int | float:
    match node:
        case ast.Constant(value=bool()):
            raise ToolError("true/false is not a number.")
        case ast.Constant(value=int() | float() as number):
            return number
        case ast.Name(id=name) if name in _CONSTANTS:
            return _CONSTANTS[name]
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            return _UNARY[type(op)](_eval(operand))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _eval(left), _eval(right)
            if type(op) in (ast.Pow, ast.BitXor):
                _check_power(a, b)
            return _bounded(_BINARY[type(op)](a, b))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS:
            values = [_eval(a) for a in args]
            if name == "factorial" and (len(values) != 1 or values[0] > 200):
                raise ToolError("factorial takes one whole number up to 200.")
            return _bounded(_FUNCTIONS[name](*values))
        case ast.Name(id=name) | ast.Call(func=ast.Name(id=name)):
            known = ", ".join([*_FUNCTIONS, *_CONSTANTS])
            raise ToolError(f"{name!r} is not something I can compute; I know {known}.")
        case ast.Tuple():
            raise ToolError("Write numbers without thousands separators (1234, not 1,234).")
    raise ToolError("Only numbers, + - * / // % ** ^, parentheses and functions like sqrt "
                    "are allowed.")


def _check_power(base: float, exponent: float) -> None:
    """Refuse a power whose result would have more than MAX_DIGITS digits (before computing
    it: 9**9**9 must not hang the process)."""
    if abs(exponent) > 10_000 or (abs(base) > 1 and
                                  abs(exponent) * math.log10(abs(base)) > MAX_DIGITS):
        raise ToolError(f"The result of that power is too large (over {MAX_DIGITS} digits).")


def _bounded(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("The expression does not give a number.")
    if isinstance(value, int) and value.bit_length() > MAX_DIGITS * 3.33:
        raise ToolError(f"The result is too large (over {MAX_DIGITS} digits).")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("The result is not a finite number.")
    return value


def _tidy(value: int | float) -> int | float:
    """12 significant digits for a float (0.1 + 0.2 is 0.3); a whole float as an int."""
    if isinstance(value, float):
        value = float(f"{value:.12g}")
        if value.is_integer() and abs(value) < 1e15:
            return int(value)
    return value


# -- knowledge --------------------------------------------------------------------------

MAX_FACTS = 20
MAX_PASSAGES = 3


def knowledge_tools(knowledge: KnowledgeBase) -> list[Tool]:
    """``knowledge_query`` and ``document_search`` over ``knowledge``, each answering from
    what the calling user (``ToolContext.user``) may see."""

    def knowledge_query(question: str = "", entity: str = "", *,
                        context: ToolContext) -> dict[str, Any]:
        if entity.strip():
            return _entity_facts(knowledge, entity.strip(), context.user)
        if not question.strip():
            raise ToolError("Give a question, or an entity whose facts you want.")
        answer = knowledge.ask(question, user=context.user)
        if answer.status != "answered":
            return {"answer": None, "note": answer.text or
                    "The knowledge graph does not answer this question."}
        return {"answer": answer.text, "values": answer.values,
                "facts": [{"fact": t.text, "source": t.citation}
                          for t in answer.triples[:MAX_FACTS]]}

    def document_search(query: str, *, context: ToolContext) -> dict[str, Any]:
        if not query.strip():
            raise ToolError("Give words to search the documents for.")
        found = knowledge.documents.search(query, user=context.user, limit=MAX_PASSAGES,
                                           relevant_only=True)
        if not found:
            return {"passages": [], "note": "No document passage matches."}
        return {"passages": [{"text": e.text, "source": e.source} for e in found]}

    # Bounded: a small model writing under the grammar may not end a string by itself.
    text = {"type": "string", "minLength": 1, "maxLength": 120}
    return [
        Tool("knowledge_query", knowledge_query,
             {"type": "object",
              "properties": {"question": {**text, "description": "A question to answer "
                                          "from the knowledge graph."},
                             "entity": {**text, "description": "Or: a thing whose facts "
                                        "to list."}},
              "additionalProperties": False},
             "Answer a question from the user's knowledge graph (facts about products, "
             "people, places…), or list the facts about one entity; facts come with their "
             "sources."),
        Tool("document_search", document_search,
             {"type": "object", "properties": {"query": {**text, "description": "What to "
                                                         "search for."}},
              "required": ["query"], "additionalProperties": False},
             "Search the user's documents; returns the best passages with their sources."),
    ]


def _entity_facts(knowledge: KnowledgeBase, entity: str, user: str) -> dict[str, Any]:
    from dialoop.errors import NotFoundError
    from dialoop.knowledge.browse import entity_view

    try:
        names, triples = entity_view(knowledge, entity, user, limit=MAX_FACTS)
    except NotFoundError:
        raise ToolError(f"The knowledge graph has no entity named {entity!r}.") from None
    return {"entity": entity, "facts": [{"fact": t.text, "source": t.citation}
                                        for t in triples]}


BUILTIN_TOOLS = [
    Tool("current_time", current_time,
         {"type": "object", "properties": {"timezone": {"type": "string", "minLength": 1,
                                                        "maxLength": 40}},
          "additionalProperties": False},
         "The current date, time and weekday in a time zone."),
    Tool("calculator", calculator,
         {"type": "object",
          "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": 80,
                                        # the characters arithmetic needs, and bounded: a
                                        # model writing under the grammar cannot wander off
                                        "pattern": r"^[-0-9a-z+*/().,^% ]{1,80}$",
                                        "description": "Arithmetic such as (17 + 4) * 3"}},
          "required": ["expression"], "additionalProperties": False},
         "Compute an arithmetic expression exactly: + - * / // % ** and sqrt, log, round…"),
]


def builtin_tools(knowledge: KnowledgeBase | None) -> list[Tool]:
    """Every built-in tool: the time, the calculator and, given knowledge, its tools."""
    return [*BUILTIN_TOOLS, *(knowledge_tools(knowledge) if knowledge is not None else [])]
