"""Rasa custom actions as dialoop tools: a client of a running action server (rasa-sdk).

``dialoop import rasa`` writes an ``actions.py`` next to the domain whose tools are
``ActionServer(url, domain_file).action(name)``. A call POSTs the webhook request of
Rasa's action server protocol (``next_action``, ``sender_id``, a ``tracker`` with the
slots, and the project's ``domain``) and turns the reply into the tool's result:
``text`` (the responses it asked for, a named response rendered from the domain with
the slots) and ``events`` (as the server sent them).

What the tracker cannot carry from dialoop: the user's last message text and intent,
the event history and the active form. The slots the action sets (``slot`` events) are
returned as the result's ``slots``, which the dialogue manager applies to the state.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from dialoop.errors import ToolError

__all__ = ["ActionServer"]

_TIMEOUT = 10.0


class ActionServer:
    """One Rasa action server (``http://host:5055/webhook``) and the project's domain."""

    def __init__(self, url: str, domain_file: Path | str | None = None) -> None:
        self.url = url
        self.domain: dict[str, Any] = {}
        if domain_file is not None and Path(domain_file).is_file():
            self.domain = json.loads(Path(domain_file).read_text(encoding="utf-8"))

    def action(self, name: str) -> Callable[..., dict[str, Any]]:
        """A tool that runs the custom action ``name`` with the dialogue's slots."""

        def run(*, context: Any = None, **slots: Any) -> dict[str, Any]:
            sender = getattr(context, "session_id", None) or "dialoop"
            return self.run(name, slots, sender=str(sender))

        run.__name__ = name
        return run

    def run(self, name: str, slots: dict[str, Any], *, sender: str = "dialoop") -> dict[str, Any]:
        payload = {
            "next_action": name,
            "sender_id": sender,
            "version": "3.6.0",
            "domain": self.domain,
            "tracker": {
                "sender_id": sender, "slots": dict(slots), "latest_message": {
                    "text": None, "intent": {}, "entities": []},
                "events": [], "paused": False, "followup_action": None, "active_loop": {},
                "latest_action_name": None,
            },
        }
        try:
            reply = httpx.post(self.url, json=payload, timeout=_TIMEOUT)
        except httpx.HTTPError as exc:
            raise ToolError(f"the Rasa action server at {self.url} did not answer ({exc}); "
                            "start it with `rasa run actions`") from None
        if reply.status_code == 404:
            raise ToolError(f"the action server at {self.url} has no action {name!r}")
        if reply.status_code != 200:
            raise ToolError(f"the action {name} failed on the action server "
                            f"(HTTP {reply.status_code}: {reply.text[:200]})")
        body = reply.json()
        texts = [self._text(r, slots) for r in body.get("responses") or []]
        events = body.get("events") or []
        # The slots the action set (SlotSet): the dialogue manager applies a tool's "slots".
        set_slots = {str(e["name"]): e.get("value") for e in events
                     if isinstance(e, dict) and e.get("event") == "slot" and e.get("name")}
        return {"text": "\n".join(t for t in texts if t), "events": events, "slots": set_slots}

    def _text(self, response: dict[str, Any], slots: dict[str, Any]) -> str:
        """A response of the action: its text, or the domain's response it names."""
        name = response.get("response") or response.get("template")
        text = response.get("text")
        if not text and name:
            variations = [v for v in (self.domain.get("responses") or {}).get(name, [])
                          if isinstance(v, dict) and v.get("text")]
            text = random.choice(variations)["text"] if variations else ""
        values = {**slots, **{k: v for k, v in response.items() if k not in ("text",)}}
        return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m[1])), str(text or "")).strip()
