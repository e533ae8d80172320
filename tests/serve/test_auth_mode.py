"""A server started keyless turns keyed when a key appears, and stays keyed: revoking
the last key does not give every local program admin rights again. Issue 12, low."""

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


def _me(url: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{url}/api/me", headers=headers, timeout=30)


def test_revoking_the_last_key_keeps_the_server_keyed(bot: Assistant) -> None:
    accounts = bot.parts.accounts
    with background_server(create_app(bot)) as running:
        assert _me(running.url).json() == {"user": "local", "role": "admin", "auth": "local"}
        key = accounts.add_key("ann")[1]
        assert _me(running.url).status_code == 401
        assert _me(running.url, key).json()["auth"] == "keys"
        accounts.revoke("ann")
        for sent in (None, key):
            refused = _me(running.url, sent)
            assert refused.status_code == 401, refused.text
        assert httpx.get(f"{running.url}/api/health").json()["auth"] == "keys"
    # Restarted keyless (a new app on the same database): local mode again.
    with background_server(create_app(bot)) as running:
        assert _me(running.url).json()["auth"] == "local"


def test_a_key_made_and_revoked_between_requests_still_counts(bot: Assistant) -> None:
    accounts = bot.parts.accounts
    with background_server(create_app(bot)) as running:
        assert _me(running.url).status_code == 200
        accounts.add_key("ann")
        accounts.revoke("ann")  # the server never saw the key active
        assert _me(running.url).status_code == 401
