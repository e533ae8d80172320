"""Session names in any language work end to end; names that would break a header are
refused before anything is stored; a retried request neither loses nor repeats turns.

The server is real (uvicorn on loopback, the real store); the model is scripted, since
nothing here depends on what it says.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

import httpx
import pytest
import sqlalchemy as sa

from dialoop.assistant import Assistant
from dialoop.dialogue.session import Sessions
from dialoop.errors import EngineError, InvalidInputError
from dialoop.store.models import ChatSession, Turn
from tests.fakes import ScriptedEngine

JAPAN = "日本の旅"
FAMILY = "👨‍👩‍👧 trip"  # emoji joined by zero-width joiners (a format character, allowed)


def _chat(http: httpx.Client, text: str, *, headers: dict | None = None,
          history: list[dict] | None = None, **body) -> httpx.Response:  # type: ignore[no-untyped-def]
    messages = [*(history or []), {"role": "user", "content": text}]
    return http.post("/v1/chat/completions", headers=headers or {},
                     json={"model": "default", "messages": messages, **body})


def _turns(bot: Assistant, ref: str, user: str = "local") -> list[tuple[str, str]]:
    sessions = bot.parts.sessions
    return [(t.role, t.content) for t in sessions.turns(sessions.get(ref, user))]


def test_a_japanese_or_emoji_name_works_and_its_header_is_percent_encoded(
        http: httpx.Client, bot: Assistant) -> None:
    first = _chat(http, "Where should I go?", metadata={"session": JAPAN})
    assert first.status_code == 200, first.text
    info = first.json()["dialoop"]
    assert info["session"] == JAPAN  # the JSON carries the name itself
    assert first.headers["X-Dialoop-Session"] == quote(JAPAN)  # latin-1-safe header
    assert unquote(first.headers["X-Dialoop-Session"]) == JAPAN
    assert first.headers["X-Dialoop-Session-Id"] == info["session_id"]

    # The request header takes the name percent-encoded (as the response gives it)...
    again = _chat(http, "And then?", headers={"X-Dialoop-Session": quote(JAPAN)})
    # ...or as raw UTF-8 bytes (curl -H 'X-Dialoop-Session: 日本の旅').
    raw = _chat(http, "And after?", headers={"X-Dialoop-Session": JAPAN.encode()})
    assert again.json()["dialoop"]["session_id"] == info["session_id"]
    assert raw.json()["dialoop"]["session_id"] == info["session_id"]
    assert [r for r, _ in _turns(bot, JAPAN)] == ["user", "assistant"] * 3
    # Header and metadata naming the same session (one encoded) do not conflict.
    both = _chat(http, "Fine.", headers={"X-Dialoop-Session": quote(JAPAN)},
                 metadata={"session": JAPAN})
    assert both.json()["dialoop"]["session_id"] == info["session_id"]

    stream = _chat(http, "Hello", stream=True, metadata={"session": FAMILY})
    assert stream.status_code == 200
    assert unquote(stream.headers["X-Dialoop-Session"]) == FAMILY
    assert stream.text.rstrip().endswith("data: [DONE]")
    assert http.get(f"/api/sessions/{quote(FAMILY)}").json()["name"] == FAMILY
    labels = {s["label"] for s in http.get("/api/sessions").json()}
    assert labels == {JAPAN, FAMILY}


def test_a_percent_sign_in_a_name_survives_the_round_trip(http: httpx.Client) -> None:
    reply = _chat(http, "Hi", metadata={"session": "100% sure"})
    assert reply.headers["X-Dialoop-Session"] == "100%25 sure"  # other ASCII unchanged
    again = _chat(http, "Hi again", headers={"X-Dialoop-Session": "100%25 sure"})
    assert again.json()["dialoop"]["session_id"] == reply.json()["dialoop"]["session_id"]


@pytest.mark.parametrize("name", [
    "trip\r\nSet-Cookie: a=b", "trip\nnext", "nul\x00name", "tab\there", "c1\x85control",
    "del\x7f", "line\u2028separator", "x" * 201,
])
def test_a_name_that_cannot_be_a_session_name_is_refused_before_anything_is_stored(
        http: httpx.Client, bot: Assistant, name: str) -> None:
    for request in ({"metadata": {"session": name}},
                    {"headers": {"X-Dialoop-Session": quote(name)}}):
        reply = _chat(http, "Hello", **request)  # type: ignore[arg-type]
        assert reply.status_code == 400, reply.text
        assert "session name" in reply.json()["error"]["message"]
    with bot.parts.db.read() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ChatSession)) == 0
    # The native API says the same of such a reference (a wrong but valid one: 404).
    assert http.get(f"/api/sessions/{quote(name, safe='')}").status_code == 400
    assert http.delete(f"/api/sessions/{quote(name, safe='')}").status_code == 400
    assert http.get("/api/sessions/no-such-session").status_code == 404


def test_a_header_that_is_not_percent_encoded_utf8_is_refused(http: httpx.Client) -> None:
    reply = _chat(http, "Hello", headers={"X-Dialoop-Session": "%FF%FE"})
    assert reply.status_code == 400
    assert "percent-encoded UTF-8" in reply.json()["error"]["message"]


def test_the_store_refuses_such_names_too(bot: Assistant) -> None:
    sessions: Sessions = bot.parts.sessions
    with pytest.raises(InvalidInputError, match="control characters"):
        sessions.create("ann", name="a\r\nb")
    with pytest.raises(InvalidInputError, match="control characters"):
        ChatSession(user_id="ann", name="nul\x00")  # the table's own last check
    assert sessions.create("ann", name=f"  {JAPAN} ").name == JAPAN
    assert sessions.list("ann")[0].session.name == JAPAN


def test_a_request_that_failed_while_seeding_is_retried_without_loss_or_duplicates(
        http: httpx.Client, bot: Assistant) -> None:
    history = [{"role": r, "content": f"{r} message {i}"}
               for i in range(20) for r in ("user", "assistant")]
    inserted = 0

    def fail_midway(mapper, connection, target) -> None:  # type: ignore[no-untyped-def]
        nonlocal inserted
        inserted += 1
        if inserted == 13:  # twelve rows are written in the transaction, then it fails
            raise sa.exc.OperationalError("INSERT INTO turns", {}, OSError("disk I/O error"))

    sa.event.listen(Turn, "after_insert", fail_midway)
    try:
        failed = _chat(http, "What did I say first?", history=history,
                       metadata={"session": "seeded"})
    finally:
        sa.event.remove(Turn, "after_insert", fail_midway)
    assert failed.status_code == 500
    assert "disk I/O error" in failed.json()["error"]["message"]
    assert _turns(bot, "seeded") == []  # all or nothing: nothing

    retried = _chat(http, "What did I say first?", history=history,
                    metadata={"session": "seeded"})
    assert retried.status_code == 200, retried.text
    turns = _turns(bot, "seeded")
    assert turns[:40] == [(m["role"], m["content"]) for m in history]  # seeded once, whole
    assert turns[40:] == [("user", "What did I say first?"),
                          ("assistant", "You said: What did I say first?")]
    again = _chat(http, "And now?", history=history, metadata={"session": "seeded"})
    assert again.status_code == 200
    assert len(_turns(bot, "seeded")) == 44  # the stored history wins: not seeded again


def test_a_retry_after_a_failed_answer_does_not_repeat_the_question(
        http: httpx.Client, bot: Assistant) -> None:
    engine: ScriptedEngine = bot.engine  # type: ignore[assignment]
    answer = engine.reply

    def down(prompt: str, adapter: str | None) -> str:
        raise EngineError("The model server is down.")

    engine.reply = down
    failed = _chat(http, "Is it up?", metadata={"session": "flaky"})
    assert failed.status_code == 502
    assert _turns(bot, "flaky") == [("user", "Is it up?")]  # written before generating
    engine.reply = answer
    retried = _chat(http, "Is it up?", metadata={"session": "flaky"})
    assert retried.status_code == 200
    assert _turns(bot, "flaky") == [("user", "Is it up?"), ("assistant", "You said: Is it up?")]
    assert retried.json()["dialoop"]["user_turn_id"] == bot.parts.sessions.turns(
        bot.parts.sessions.get("flaky", "local"))[0].id
