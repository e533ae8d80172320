"""The agent loop: the model chooses tool calls, sees their results, and answers.

    run = run_agent(engine, messages, params, registry, ToolContext(user="ann"))
    for chunk in run:                 # the answer, streamed (text the model wrote before
        print(chunk.text, end="")     # a call streams too)
    run.steps                         # one dict per call: for the turn's trace
    run.finish, run.usage             # of the whole run, both summed over every generation

Each step is one :class:`~dialoop.agent.calls.ToolTurn` with ``choice="auto"``: the model
answers, or asks for calls (well-formed by construction). The calls run through the
:class:`~dialoop.agent.tools.ToolRegistry` with the caller's
:class:`~dialoop.agent.tools.ToolContext` (a user's tools and data stay theirs); a
failing call is shown to the model as its result, never raised. After ``max_steps``
rounds of calls the model must answer without tools.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from dialoop.agent.calls import (
    Finish,
    FunctionSpec,
    RequestedCall,
    ToolTurn,
    render_calls,
    result_message,
    usage_sum,
)
from dialoop.agent.tools import ToolContext, ToolRegistry
from dialoop.engine import Chunk, GenerationParams, Message, Usage
from dialoop.errors import InvalidInputError

if TYPE_CHECKING:
    from dialoop.engine import Engine

__all__ = ["AgentRun", "run_agent"]

log = logging.getLogger(__name__)


class AgentRun:
    """An agent's answer being made: iterate it (once) for the answer's chunks.

    After iteration: ``steps`` (one dict per call), ``text`` (all text yielded),
    ``finish`` ("stop" | "length" | "cancelled") and ``usage`` (every generation summed);
    ``messages`` is the transcript the model saw, results included.
    """

    def __init__(self, engine: Engine, messages: Sequence[Message], params: GenerationParams,
                 registry: ToolRegistry, context: ToolContext, *, max_steps: int,
                 engine_kwargs: dict[str, Any], first: str = "auto") -> None:
        if max_steps < 0:
            raise InvalidInputError(f"max_steps must be 0 or more, got {max_steps}.")
        self.steps: list[dict[str, Any]] = []
        self.messages: list[Message] = list(messages)
        self.text = ""
        self.finish: Finish | None = None
        self.usage: Usage | None = None
        self.problems: list[str] = []  # calls that did not parse or validate (see ToolTurn)
        self._engine, self._params = engine, params
        self._registry, self._context = registry, context
        self._functions = [FunctionSpec.of_tool(t) for t in registry]
        self._max_steps = max_steps
        self._first = first
        self._engine_kwargs = engine_kwargs
        self._started = False

    def __iter__(self) -> Iterator[Chunk]:
        if self._started:
            raise RuntimeError("An AgentRun can be iterated once.")
        self._started = True
        return self._run()

    def _run(self) -> Iterator[Chunk]:
        failed = False  # a call that did not come out whole: answer without tools
        for step in range(self._max_steps + 1):
            last = step == self._max_steps or not self._functions or failed
            choice = "none" if last else self._first if step == 0 else "auto"
            turn = ToolTurn(self._functions, choice)
            for chunk in turn.stream(self._engine, self.messages, self._params,
                                     **self._engine_kwargs):
                if chunk.text:
                    self.text += chunk.text
                    yield Chunk(chunk.text)
            self.usage = usage_sum(self.usage, turn.usage)
            self.problems.extend(turn.problems)
            if turn.problems and not turn.calls and turn.finish != "cancelled" and not last:
                log.warning("agent step %d: no usable call: %s", step + 1, turn.problems[-1])
                failed = True
                continue
            if turn.finish != "tool_calls":
                self.finish = turn.finish or "stop"
                yield Chunk("", finish_reason=self.finish, usage=self.usage)
                return
            if turn.content:
                self.text += "\n"  # what the model said before its calls is its own line
                yield Chunk("\n")
            self._run_calls(step + 1, turn.content, turn.calls)
        raise AssertionError("the last step answers without tools")

    def _run_calls(self, step: int, content: str, calls: Sequence[RequestedCall]) -> None:
        """Run ``calls`` and put them and their results into the transcript."""
        said = f"{content}\n" if content else ""
        self.messages.append({"role": "assistant", "content": said + render_calls(calls)})
        for call in calls:
            done = self._registry.call(call.name, call.arguments, self._context)
            self.steps.append({"step": step, "id": call.id, **done.to_dict()})
            shown = done.result if done.ok else {"error": done.error}
            self.messages.append(result_message(call.name, json.dumps(shown, ensure_ascii=False,
                                                                      default=str)))


def run_agent(engine: Engine, messages: Sequence[Message], params: GenerationParams,
              registry: ToolRegistry, context: ToolContext, *, max_steps: int = 4,
              adapter: str | None = None, cache_scope: str | None = None,
              stop: threading.Event | None = None, first: str = "auto") -> AgentRun:
    """An answer to ``messages`` for which the model may call the tools of ``registry``
    (at most ``max_steps`` rounds of calls); iterate the result for the answer.

    ``first``: the tool choice of the first step ("auto"; "required" or a tool's name make
    the model start with a call, for a model too small to choose one itself)."""
    return AgentRun(engine, messages, params, registry, context, max_steps=max_steps,
                    first=first, engine_kwargs={"adapter": adapter, "cache_scope": cache_scope,
                                   "stop": stop})
