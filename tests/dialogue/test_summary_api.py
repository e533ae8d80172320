"""``POST /api/sessions/{ref}/summary``: the caller's own session is summarised (and stored
once); another user's session does not exist for them (404, as for every session route).

A real server on loopback with API keys; the model is a stand-in (the extractive
summariser needs only its tokenizer).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dialoop.assistant import Assistant, open_assistant
from dialoop.config import Settings
from dialoop.serve import create_app
from dialoop.serve.server import background_server
from tests.fakes import FakeEngine


@pytest.fixture
def bot(settings: Settings) -> Iterator[Assistant]:
    with open_assistant(settings, engine=FakeEngine()) as assistant:
        yield assistant


def _seed(bot: Assistant, user: str, name: str) -> str:
    sessions = bot.parts.sessions
    session = sessions.create(user, name=name)
    sessions.add_turns(session, [("user", "Hi, my name is Marisol Quint."), ("assistant", "Hi!"),
                                 ("user", "What time is it?"), ("assistant", "Noon."),
                                 ("user", "My order number is A-48213."), ("assistant", "OK.")])
    return session.id


def test_a_user_summarises_their_own_session_and_no_one_elses(bot: Assistant) -> None:
    ann_session = _seed(bot, "ann", "orders")
    ann = {"Authorization": f"Bearer {bot.parts.accounts.add_key('ann')[1]}"}
    bob = {"Authorization": f"Bearer {bot.parts.accounts.add_key('bob')[1]}"}
    with background_server(create_app(bot)) as server, httpx.Client(
            base_url=server.url, timeout=30) as http:
        made = http.post("/api/sessions/orders/summary", headers=ann)
        assert made.status_code == 200, made.text
        body = made.json()
        assert body["session_id"] == ann_session and body["turns"] == [1, 3]
        assert "Marisol Quint" in body["text"] and "A-48213" in body["text"]
        assert "What time" not in body["text"]
        again = http.post(f"/api/sessions/{ann_session}/summary", headers=ann)
        assert again.json()["id"] == body["id"]  # stored once, by name or id

        for ref in ("orders", ann_session):  # bob cannot read it, nor learn that it exists
            refused = http.post(f"/api/sessions/{ref}/summary", headers=bob)
            assert refused.status_code == 404, refused.text
            assert "Marisol" not in refused.text
        unknown = http.post("/api/sessions/nowhere/summary", headers=ann)
        assert unknown.status_code == 404
        assert http.post("/api/sessions/orders/summary").status_code == 401  # no key


def test_an_empty_session_has_nothing_to_summarise(bot: Assistant) -> None:
    bot.parts.sessions.create("local", name="empty")
    with background_server(create_app(bot)) as server:
        refused = httpx.post(f"{server.url}/api/sessions/empty/summary", timeout=30)
    assert refused.status_code == 400
    assert "nothing to summarise" in refused.json()["error"]["message"]
