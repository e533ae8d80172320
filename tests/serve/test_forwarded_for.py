"""X-Forwarded-For is believed only from trusted proxies (none by default), so that a local
client cannot rotate its apparent address to dodge the failed-key limit per address
(issue 12: uvicorn trusted the header from 127.0.0.1 by default)."""

from __future__ import annotations

import httpx
import pytest

from dialoop.assistant import open_assistant
from dialoop.config import load_settings
from dialoop.errors import ConfigError
from dialoop.serve import create_app
from dialoop.serve.auth import MAX_FAILURES
from dialoop.serve.server import background_server
from tests.fakes import FakeEngine


def _guesses(**settings: object) -> list[int]:
    """Statuses of MAX_FAILURES + 1 made-up keys (each a new key id), each request
    claiming another address in X-Forwarded-For."""
    with open_assistant(load_settings(**settings), engine=FakeEngine()) as bot:
        bot.parts.accounts.add_key("ann")
        with (background_server(create_app(bot, keys_required=True)) as running,
              httpx.Client(base_url=running.url, timeout=60) as client):
            return [
                client.get("/api/me", headers={
                    "Authorization": f"Bearer dlp_{i:012x}_{'s' * 40}",
                    "X-Forwarded-For": f"203.0.113.{i + 1}",
                }).status_code
                for i in range(MAX_FAILURES + 1)
            ]


def test_rotating_forwarded_addresses_does_not_dodge_the_limit() -> None:
    assert _guesses() == [401] * MAX_FAILURES + [429]


def test_a_trusted_proxy_passes_on_its_clients_addresses() -> None:
    # Behind a proxy on this machine, each forwarded address is a client of its own.
    assert _guesses(serve_trusted_proxies=["127.0.0.1"]) == [401] * (MAX_FAILURES + 1)


def test_trusted_proxies_must_be_addresses() -> None:
    with pytest.raises(ConfigError, match="not an IP address or network"):
        load_settings(serve_trusted_proxies=["proxy.example.com"])
    assert load_settings(serve_trusted_proxies=["10.0.0.0/8", "::1"]).serve_trusted_proxies
