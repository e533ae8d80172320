"""API keys and isolation: user B can read and do nothing with user A's data."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from dialoop.assistant import Assistant
from dialoop.serve import create_app
from dialoop.serve.server import RunningServer, background_server

pytestmark = pytest.mark.slow


@pytest.fixture
def keys(assistant: Assistant) -> dict[str, str]:
    accounts = assistant.parts.accounts
    return {"ann": accounts.add_key("ann")[1], "bob": accounts.add_key("bob")[1],
            "root": accounts.add_key("root", "admin")[1]}


@pytest.fixture
def server(assistant: Assistant, keys: dict[str, str]) -> Iterator[RunningServer]:
    with background_server(create_app(assistant, keys_required=True)) as running:
        yield running


def _as(server: RunningServer, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=120)


def _chat(server: RunningServer, key: str, text: str, **kwargs: object):  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(
        model="default", max_tokens=8, messages=[{"role": "user", "content": text}], **kwargs)


def test_keys_are_required(server: RunningServer, keys: dict[str, str]) -> None:
    for key in (None, "dlp_000000000000_not-a-real-key-at-all-xxxxxxxx", "nonsense"):
        response = _as(server, key).get("/api/sessions")
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        _chat(server, "dlp_000000000000_wrong-secret-wrong-secret-wrong", "Hi")
    assert _as(server, keys["ann"]).get("/api/me").json() == {
        "user": "ann", "role": "user", "auth": "keys"}
    assert _as(server, None).get("/api/health").status_code == 200  # health needs no key


def test_user_b_sees_nothing_of_user_a(
    server: RunningServer, keys: dict[str, str], assistant: Assistant
) -> None:
    completion = _chat(server, keys["ann"], "My secret code is 4417.",
                       extra_headers={"X-Dialoop-Session": "private"})
    session_id, turn_id = completion.dialoop["session_id"], completion.dialoop["turn_id"]  # type: ignore[attr-defined]
    ann, bob = _as(server, keys["ann"]), _as(server, keys["bob"])
    assert [s["id"] for s in ann.get("/api/sessions").json()] == [session_id]
    assert ann.get(f"/api/turns/{turn_id}").status_code == 200

    assert bob.get("/api/sessions").json() == []
    for path in (f"/api/sessions/{session_id}", "/api/sessions/private",
                 f"/api/sessions/{session_id}/export", f"/api/turns/{turn_id}",
                 f"/api/turns/{turn_id - 1}"):
        response = bob.get(path)
        assert response.status_code == 404, path
        assert "4417" not in response.text
    assert bob.delete(f"/api/sessions/{session_id}").status_code == 404
    # Bob naming Ann's session continues a session of his own, without her history.
    mine = _chat(server, keys["bob"], "What is my secret code?",
                 extra_headers={"X-Dialoop-Session": session_id})
    assert mine.dialoop["session_id"] != session_id  # type: ignore[attr-defined]
    assert mine.usage.prompt_tokens < completion.usage.prompt_tokens + 10
    # Bob cannot act as Ann through the `user` field; an admin can.
    with pytest.raises(openai.PermissionDeniedError):
        _chat(server, keys["bob"], "Hi", user="ann")
    _chat(server, keys["root"], "Hello again", user="ann",
          extra_headers={"X-Dialoop-Session": "private"})
    turns = ann.get("/api/sessions/private").json()["turns"]
    assert [t["content"] for t in turns][::2] == ["My secret code is 4417.", "Hello again"]
    # Ann's session is intact after all of Bob's attempts.
    assert ann.get(f"/api/sessions/{session_id}").status_code == 200


def test_only_admins_read_metrics(server: RunningServer, keys: dict[str, str]) -> None:
    response = _as(server, keys["bob"]).get("/api/metrics")
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert _as(server, keys["root"]).get("/api/metrics").status_code == 200


def test_revoked_key_stops_working(
    server: RunningServer, keys: dict[str, str], assistant: Assistant
) -> None:
    bob = _as(server, keys["bob"])
    assert bob.get("/api/sessions").status_code == 200
    assistant.parts.accounts.revoke("bob")
    assert bob.get("/api/sessions").status_code == 401


def test_local_mode_until_a_key_exists(assistant: Assistant) -> None:
    with background_server(create_app(assistant)) as running:
        anyone = _as(running, None)
        assert anyone.get("/api/me").json() == {"user": "local", "role": "admin",
                                                "auth": "local"}
        key = assistant.parts.accounts.add_key("ann")[1]
        assert anyone.get("/api/me").status_code == 401
        assert _as(running, key).get("/api/me").json()["user"] == "ann"


def test_lessons_of_a_never_change_answers_to_b(
    server: RunningServer, keys: dict[str, str]
) -> None:
    question = "Who is the founder of Zorblax Industries?"
    before = _chat(server, keys["bob"], question).choices[0].message.content
    taught = _chat(server, keys["ann"], question)
    ann = _as(server, keys["ann"])
    ann.post(f"/api/turns/{taught.dialoop['turn_id']}/correction",  # type: ignore[attr-defined]
             json={"answer": "Zorblax Industries was founded by Mira Quell."}).raise_for_status()
    assert "Mira Quell" in _chat(server, keys["ann"], question).choices[0].message.content
    after = _chat(server, keys["bob"], question).choices[0].message.content
    assert "Mira Quell" not in after
    assert after == before
