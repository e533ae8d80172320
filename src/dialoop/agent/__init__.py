"""Tools the assistant can call: a registry of Python callables with JSON-schema parameters,
function calling in the model's own format (:mod:`~dialoop.agent.calls`), and the agent
loop in which the model chooses its calls (:mod:`~dialoop.agent.loop`)."""

from dialoop.agent.calls import FunctionSpec, RequestedCall, ToolTurn
from dialoop.agent.loop import AgentRun, run_agent
from dialoop.agent.tools import Tool, ToolCall, ToolContext, ToolError, ToolRegistry

__all__ = [
    "AgentRun",
    "FunctionSpec",
    "RequestedCall",
    "Tool",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ToolTurn",
    "run_agent",
]
