"""Feedback, lessons and learning over HTTP, with accounts."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dialoop.assistant import Assistant, open_assistant
from dialoop.config import load_settings
from dialoop.serve import create_app
from dialoop.serve.server import RunningServer, background_server

pytestmark = pytest.mark.slow
QUESTION = "Who founded Zorblax Industries?"
TAUGHT = "Zorblax Industries was founded by Mira Quell."


@pytest.fixture
def bot(dialoop_home, llama_engine) -> Iterator[Assistant]:  # type: ignore[no-untyped-def]
    with open_assistant(load_settings(admin_users=["root"]), engine=llama_engine) as bot:
        yield bot


@pytest.fixture
def clients(bot: Assistant) -> Iterator[dict[str, httpx.Client]]:
    accounts = bot.parts.accounts
    keys = {"ann": accounts.add_key("ann")[1], "bob": accounts.add_key("bob")[1],
            "root": accounts.add_key("root", "admin")[1]}
    with background_server(create_app(bot, keys_required=True)) as running:
        yield {name: _client(running, key) for name, key in keys.items()}


def _client(server: RunningServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                        timeout=120)


def _ask(client: httpx.Client, text: str) -> dict:
    response = client.post("/v1/chat/completions", json={
        "model": "default", "max_tokens": 30, "messages": [{"role": "user", "content": text}]})
    response.raise_for_status()
    return response.json()


def test_feedback_and_lessons_stay_with_their_user(clients: dict[str, httpx.Client]) -> None:
    ann, bob, root = clients["ann"], clients["bob"], clients["root"]
    assert ann.get("/api/health").json()["features"]["learning"] is True
    turn = _ask(ann, QUESTION)["dialoop"]["turn_id"]
    assert bob.post(f"/api/turns/{turn}/rating", json={"value": -1}).status_code == 404
    assert ann.post(f"/api/turns/{turn}/rating", json={"value": 7}).status_code == 400
    assert ann.post(f"/api/turns/{turn}/rating", json={"value": -1}).json()["kind"] == "rating"
    assert ann.post(f"/api/turns/{turn}/correction",
                    json={"answer": TAUGHT, "scope": "global"}).status_code == 403
    receipt = ann.post(f"/api/turns/{turn}/correction", json={"answer": TAUGHT}).json()
    lesson = receipt["lesson_id"]
    assert [x["id"] for x in ann.get("/api/lessons").json()] == [lesson]
    assert "Mira Quell" in _ask(ann, QUESTION)["choices"][0]["message"]["content"]
    assert bob.get("/api/lessons").json() == []
    assert "Mira Quell" not in _ask(bob, QUESTION)["choices"][0]["message"]["content"]

    assert bob.post(f"/api/lessons/{lesson}/promote").status_code == 403
    promoted = root.post(f"/api/lessons/{lesson}/promote").json()
    assert promoted["scope"] == "global"
    assert [(x["id"], x["answer"]) for x in bob.get("/api/lessons").json()] == [
        (promoted["id"], TAUGHT)]
    assert bob.delete(f"/api/lessons/{promoted['id']}").status_code in (403, 404)
    assert root.delete(f"/api/lessons/{promoted['id']}").json()["status"] == "forgotten"
    assert bob.get("/api/lessons").json() == []
    metrics = root.get("/api/metrics").text
    assert 'dialoop_lessons{scope="global",status="forgotten"} 1.0' in metrics


def test_learning_status_history_and_rollback_rights(clients: dict[str, httpx.Client]) -> None:
    ann, root = clients["ann"], clients["root"]
    status = ann.get("/api/learning/status").json()
    assert status["lessons"]["active"] == 0 and status["adapter"] is None
    assert ann.get("/api/learning/history").json() == []
    refused = ann.post("/api/learning/rollback", json={"line": "global", "version": None})
    assert refused.status_code == 403
    missing = root.post("/api/learning/rollback", json={"line": "global", "version": None})
    assert missing.status_code == 404  # no global adapter yet
    assert ann.post("/api/learning/run").status_code == 400  # nothing to consolidate
