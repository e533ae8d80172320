"""Tools every domain may use, each with its parameter schema.

    tools:
      current_time:
        function: dialoop.agent.builtin:current_time
        parameters: {type: object, properties: {timezone: {type: string}}}

:data:`BUILTIN_TOOLS` holds them as ready :class:`~dialoop.agent.tools.Tool` objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialoop.agent.tools import Tool, ToolError

__all__ = ["BUILTIN_TOOLS", "current_time"]


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


BUILTIN_TOOLS = [
    Tool("current_time", current_time,
         {"type": "object", "properties": {"timezone": {"type": "string", "minLength": 1}},
          "additionalProperties": False},
         "The current date, time and weekday in a time zone."),
]
