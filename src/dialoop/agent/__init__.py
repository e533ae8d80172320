"""Tools the assistant can call: a registry of Python callables with JSON-schema parameters."""

from dialoop.agent.tools import Tool, ToolCall, ToolContext, ToolError, ToolRegistry

__all__ = ["Tool", "ToolCall", "ToolContext", "ToolError", "ToolRegistry"]
