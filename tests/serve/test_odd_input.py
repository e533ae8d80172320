"""Odd input gets a clear 4xx and changes nothing, never a 5xx: ids beyond 64 bits, a
lone surrogate in any text, a path as an import's file name, the admin's ``user``.

The server is real (uvicorn on loopback, the real store); the model is scripted.
"""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dialoop.assistant import Assistant
from dialoop.serve.httperrors import install_error_handlers
from dialoop.store.models import ChatSession, Feedback, Lesson, Turn

TOO_BIG = 2**63  # one past the largest 64-bit row id
LONE = '"a \\ud800 b"'  # a JSON string holding half of a surrogate pair


def _count(bot: Assistant, table: type) -> int:
    with bot.parts.db.read() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(table))  # type: ignore[no-any-return]


def _raw_json(http: httpx.Client, method: str, url: str, body: str) -> httpx.Response:
    """Send ``body`` as written: httpx would escape a lone surrogate differently."""
    return http.request(method, url, content=body.encode(),
                        headers={"Content-Type": "application/json"})


def _answer(http: httpx.Client) -> int:
    reply = http.post("/v1/chat/completions", json={
        "model": "default", "messages": [{"role": "user", "content": "Capital of Japan?"}]})
    assert reply.status_code == 200, reply.text
    return reply.json()["dialoop"]["turn_id"]  # type: ignore[no-any-return]


def test_ids_beyond_64_bits_are_invalid_and_missing_ones_not_found(
        http: httpx.Client, bot: Assistant) -> None:
    turn_id = _answer(http)
    for big in (TOO_BIG, -TOO_BIG - 1, 10**30, 0):
        for method, url, body in [
            ("GET", f"/api/turns/{big}", None),
            ("POST", f"/api/turns/{big}/rating", {"value": 1}),
            ("POST", f"/api/turns/{big}/correction", {"answer": "Kyoto."}),
            ("POST", f"/api/lessons/{big}/promote", None),
            ("DELETE", f"/api/lessons/{big}", None),
            ("DELETE", f"/api/knowledge/triples/{big}", None),
            ("DELETE", f"/api/knowledge/triples/triple:{big}", None),
        ]:
            reply = http.request(method, url, json=body)
            assert reply.status_code == 400, (method, url, reply.status_code, reply.text)
            assert reply.json()["error"]["type"] == "invalid_request_error"
    for body in ({"chosen": "a", "rejected": "b", "turn_id": TOO_BIG},):
        assert http.post("/api/preferences", json=body).status_code == 400
    assert http.post("/api/learning/rollback",
                     json={"line": "global", "version": TOO_BIG}).status_code == 400
    # The largest valid id names nothing: that is "not found", as for any missing item.
    largest = 2**63 - 1
    assert http.get(f"/api/turns/{largest}").status_code == 404
    assert http.post(f"/api/turns/{largest}/rating", json={"value": 1}).status_code == 404
    assert http.delete(f"/api/lessons/{largest}").status_code == 404
    assert http.get(f"/api/turns/{turn_id}").status_code == 200
    assert _count(bot, Feedback) == 0


def test_a_lone_surrogate_in_a_chat_message_is_refused_and_stores_nothing(
        http: httpx.Client, bot: Assistant) -> None:
    bodies = [
        f'{{"model": "default", "messages": [{{"role": "user", "content": {LONE}}}]}}',
        f'{{"model": "default", "messages": [{{"role": "user", "content": [{{"type": "text", '
        f'"text": {LONE}}}]}}]}}',
        f'{{"model": "default", "messages": [{{"role": "system", "content": {LONE}}}, '
        f'{{"role": "user", "content": "Hi"}}]}}',
        f'{{"model": "default", "metadata": {{"session": "trip"}}, "messages": [{{"role": '
        f'"user", "content": {LONE}}}, {{"role": "assistant", "content": "Hm."}}, '
        f'{{"role": "user", "content": "Hi"}}]}}',
    ]
    for body in bodies:
        reply = _raw_json(http, "POST", "/v1/chat/completions", body)
        assert reply.status_code == 400, reply.text
        assert "lone surrogate" in reply.json()["error"]["message"]
    named = _raw_json(http, "POST", "/v1/chat/completions", '{"model": "default", '
                      f'"metadata": {{"session": {LONE}}}, "messages": [{{"role": "user", '
                      '"content": "Hi"}]}')
    assert named.status_code == 400
    assert _count(bot, ChatSession) == 0 and _count(bot, Turn) == 0  # no empty session left
    # A surrogate PAIR is an emoji, and fine.
    ok = _raw_json(http, "POST", "/v1/chat/completions", '{"model": "default", "messages": '
                   '[{"role": "user", "content": "I like \\ud83d\\ude00"}]}')
    assert ok.status_code == 200
    assert bot.parts.sessions.turns(bot.parts.sessions.of_user("local")[0])[0].content == \
        "I like \U0001f600"


def test_a_lone_surrogate_anywhere_else_is_refused_too(http: httpx.Client, bot: Assistant
                                                      ) -> None:
    turn_id = _answer(http)
    stats = http.get("/api/knowledge/stats").json()
    for method, url, body in [
        ("POST", f"/api/turns/{turn_id}/correction", f'{{"answer": {LONE}}}'),
        ("POST", f"/api/turns/{turn_id}/rating", f'{{"value": -1, "reason": {LONE}}}'),
        ("POST", "/api/lessons", f'{{"question": {LONE}, "answer": "Kyoto."}}'),
        ("POST", "/api/preferences", f'{{"chosen": "a", "rejected": {LONE}}}'),
        ("POST", "/api/learning/rollback", f'{{"line": {LONE}}}'),
        ("POST", "/api/knowledge/triples", f'{{"subject": "Acme", "relation": "ceo", '
                                           f'"object": {LONE}}}'),
        ("POST", "/api/knowledge/query", f'{{"question": {LONE}}}'),
    ]:
        reply = _raw_json(http, method, url, body)
        assert reply.status_code == 400, (url, reply.text)
        assert "lone surrogate" in reply.json()["error"]["message"], url
    assert _count(bot, Feedback) == 0 and _count(bot, Lesson) == 0
    assert http.get("/api/knowledge/stats").json() == stats  # no fact either


def test_an_error_quoting_a_lone_surrogate_is_still_a_valid_response(http: httpx.Client) -> None:
    reply = _raw_json(http, "POST", "/v1/chat/completions",
                      f'{{"model": {LONE}, "messages": [{{"role": "user", "content": "Hi"}}]}}')
    assert reply.status_code == 404  # no such model: said in valid UTF-8
    assert "\\ud800" in reply.json()["error"]["message"]


@pytest.mark.parametrize("name", ["..", ".", "../facts.csv", "a/b.csv", "..\\facts.csv",
                                  "/etc/passwd", "nul\x00.csv", "x" * 201 + ".csv", " "])
def test_an_import_file_name_must_be_a_plain_name(http: httpx.Client, name: str) -> None:
    before = http.get("/api/knowledge/stats").json()
    reply = http.post("/api/knowledge/import", params={"filename": name},
                      content=b"subject,relation,object\nAcme,ceo,Ann Lee\n")
    assert reply.status_code == 400, reply.text
    assert "filename" in reply.json()["error"]["message"]
    assert http.get("/api/knowledge/stats").json() == before


def test_a_fact_is_deleted_by_the_id_it_is_shown_with_or_its_number(http: httpx.Client) -> None:
    ids = []
    for obj in ("Ann Lee", "Bob Ray"):
        added = http.post("/api/knowledge/triples",
                          json={"subject": "Acme", "relation": "ceo", "object": obj})
        assert added.status_code == 201, added.text
        ids.append(added.json()["id"])
    assert all(i.startswith("triple:") for i in ids)
    assert http.delete(f"/api/knowledge/triples/{ids[0]}").status_code == 204
    assert http.delete(f"/api/knowledge/triples/{ids[1].removeprefix('triple:')}"
                       ).status_code == 204
    gone = http.delete(f"/api/knowledge/triples/{ids[0]}")
    assert gone.status_code == 404 and ids[0] in gone.json()["error"]["message"]
    assert http.delete("/api/knowledge/triples/fact:1").status_code == 400


@pytest.mark.parametrize("user", ["bob\n", "../etc", "-bob", "bob smith", "böb"])
def test_an_admin_acting_for_a_user_must_name_a_valid_user(
        http: httpx.Client, bot: Assistant, user: str) -> None:
    reply = http.post("/v1/chat/completions", json={
        "model": "default", "user": user, "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 400, reply.text
    assert "user name" in reply.json()["error"]["message"]
    assert _count(bot, ChatSession) == 0


def test_an_admin_may_act_for_a_valid_user(http: httpx.Client, bot: Assistant) -> None:
    reply = http.post("/v1/chat/completions", json={
        "model": "default", "user": "bob@example.com",
        "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 200, reply.text
    assert [s.user_id for s in bot.parts.sessions.of_user("bob@example.com")] == [
        "bob@example.com"]


def test_what_the_database_refuses_is_reported_as_invalid_input() -> None:
    """The backstop behind the models' own checks: a 400, not a 500."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/surrogate")
    async def surrogate() -> None:
        "\ud800".encode()

    @app.get("/overflow")
    async def overflow() -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    @app.get("/bug")
    async def bug() -> None:
        raise KeyError("session")

    client = TestClient(app, raise_server_exceptions=False)
    for path in ("/surrogate", "/overflow"):
        reply = client.get(path)
        assert reply.status_code == 400, path
        json.loads(reply.text)  # valid JSON, in the usual shape
        assert reply.json()["error"]["code"] == "invalid_input"
    assert client.get("/bug").status_code == 500  # a real bug stays a 500
