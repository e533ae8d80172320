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


def test_closing_a_stream_early_keeps_the_partial_answer_and_frees_the_engine(
    assistant: Assistant,
) -> None:
    stream = assistant.stream("Write a long story about a dragon.", session="s")
    pieces = [next(iter(stream)) for _ in range(3)]
    stream.close()  # a client that went away
    assert stream.reply is not None and stream.reply.finish_reason == "cancelled"
    assert stream.reply.text == "".join(pieces)
    # the engine is free for the next request at once
    assert "Tokyo" in assistant.ask("What is the capital of Japan?", session="s").text
    turns = assistant.sessions.turns(assistant.sessions.get("s", "local"))
    assert [t.status for t in turns] == ["complete", "cancelled", "complete", "complete"]
