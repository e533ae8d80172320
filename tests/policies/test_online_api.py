"""The online learner learns from feedback given through the real API: a real server
(uvicorn on loopback, the real store) around a scripted model, the tiny domain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dialoop.assistant import Assistant, open_assistant
from dialoop.config import load_settings
from dialoop.dialogue.domain import load_domain
from dialoop.serve import create_app
from dialoop.serve.server import background_server
from tests.fakes import ScriptedEngine
from tests.policies.conftest import write_tiny


@pytest.fixture
def bot(dialoop_home: Path, tmp_path: Path) -> Iterator[Assistant]:
    domain = load_domain(write_tiny(tmp_path / "tiny"))
    engine = ScriptedEngine(lambda prompt, adapter: "Happy to help.")
    settings = load_settings(policy_online=True, policy_online_exploration=0.0, learn_auto=False)
    with open_assistant(settings, engine=engine, domain=domain) as assistant:
        yield assistant


def _ask(http: httpx.Client, text: str, session: str) -> int:
    reply = http.post("/v1/chat/completions", headers={"X-Dialoop-Session": session}, json={
        "model": "default", "messages": [{"role": "user", "content": text}]})
    assert reply.status_code == 200, reply.text
    return reply.json()["dialoop"]["turn_id"]  # type: ignore[no-any-return]


def test_a_rating_through_the_api_updates_the_users_online_policy(bot: Assistant) -> None:
    online = bot.online
    assert online is not None
    with background_server(create_app(bot)) as server, httpx.Client(
            base_url=server.url, timeout=60) as http:
        turn_id = _ask(http, "hello", "greeting")  # small talk: answered, no task completed
        assert online.observations("local") == 0
        state_file = online.folder / f"{online.key('local')}.npz"
        assert not state_file.exists()

        rated = http.post(f"/api/turns/{turn_id}/rating", json={"value": -1})
        assert rated.status_code == 200, rated.text

        assert online.observations("local") == 1  # the decision of the rated answer
        assert state_file.exists()
        before = state_file.read_bytes()
        # The same decision rated again is learned again: the state on disk changes.
        assert http.post(f"/api/turns/{turn_id}/rating", json={"value": -1}).status_code == 200
        assert online.observations("local") == 2 and state_file.read_bytes() != before
        # A completed task (the order tool ran) teaches it without a rating.
        _ask(http, "Where is my order 1234?", "order")
        assert online.observations("local") == 4  # call the tool, then answer
    assert online.observations("someone-else") == 0
