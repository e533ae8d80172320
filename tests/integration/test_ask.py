"""The real bundled model answers through the whole stack."""

from __future__ import annotations

from dialoop.assistant import Assistant


def test_ask_capital_of_japan(assistant: Assistant) -> None:
    reply = assistant.ask("What is the capital of Japan?")
    assert "Tokyo" in reply.text
    assert reply.finish_reason == "stop"
    turns = assistant.sessions.turns(assistant.sessions.get(reply.session_id, "local"))
    assert [(t.role, t.status) for t in turns] == [("user", "complete"), ("assistant", "complete")]
    assert turns[1].content == reply.text
