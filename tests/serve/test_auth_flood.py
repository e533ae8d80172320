"""Guessing API keys is slow and does not slow anyone else: failed checks are limited
per address and per key id (429 without scrypt), known keys skip the queue, and a
revocation still takes effect at once. Issue 12, medium #7."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import anyio
import httpx
import pytest

import dialoop.store.accounts as accounts_module
from dialoop.assistant import Assistant, open_assistant
from dialoop.config import Settings
from dialoop.errors import NotAuthenticatedError
from dialoop.serve import create_app
from dialoop.serve.auth import FAILURE_WINDOW, MAX_FAILURES, Auth, FailedAttempts
from dialoop.serve.server import background_server
from tests.fakes import FakeEngine


@dataclass
class Keyed:
    assistant: Assistant
    client: httpx.Client
    keys: dict[str, str]

    def me(self, key: str) -> httpx.Response:
        return self.client.get("/api/me", headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def scrypt_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every scrypt check of a secret, counted (the real check still runs)."""
    checks: list[str] = []
    real = accounts_module._check

    def counting(secret: str, stored: str) -> bool:
        checks.append(secret)
        return real(secret, stored)

    monkeypatch.setattr(accounts_module, "_check", counting)
    return checks


@pytest.fixture
def keyed(settings: Settings) -> Iterator[Keyed]:
    with open_assistant(settings, engine=FakeEngine()) as bot:
        keys = {name: bot.parts.accounts.add_key(name)[1] for name in ("ann", "bob")}
        with (background_server(create_app(bot, keys_required=True)) as running,
              httpx.Client(base_url=running.url, timeout=60) as client):
            yield Keyed(bot, client, keys)


def _wrong_secret(key: str) -> str:
    return key[:-8] + ("x" * 8 if not key.endswith("x" * 8) else "y" * 8)


def test_a_flood_of_bad_keys_gets_429s_and_a_known_key_still_works(
    keyed: Keyed, scrypt_checks: list[str]
) -> None:
    ann = keyed.keys["ann"]
    assert keyed.me(ann).status_code == 200  # ann's key is known from now on
    bad = _wrong_secret(ann)  # ann's key id, the wrong secret: the costly case
    start = time.monotonic()
    ann_seconds = []  # ann's requests while the flood lasts
    with ThreadPoolExecutor(8) as flood:
        pending = [flood.submit(keyed.me, bad) for _ in range(60)]
        while not all(f.done() for f in pending):
            asked = time.monotonic()
            assert keyed.me(ann).json()["user"] == "ann"
            ann_seconds.append(time.monotonic() - asked)
            time.sleep(0.05)
        answers = [f.result() for f in pending]
    flood_seconds = time.monotonic() - start
    statuses = [a.status_code for a in answers]
    assert statuses.count(401) == MAX_FAILURES and statuses.count(429) == 60 - MAX_FAILURES
    assert len(scrypt_checks) == 1 + MAX_FAILURES  # ann's first request, then the 401s
    limited = next(a for a in answers if a.status_code == 429)
    assert 1 <= int(limited.headers["Retry-After"]) <= FAILURE_WINDOW
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert flood_seconds < 20 and ann_seconds and max(ann_seconds) < 1
    assert keyed.me(ann).status_code == 200  # still, after the flood
    # Bob's key was never checked, so it would need scrypt: this address must wait.
    assert keyed.me(keyed.keys["bob"]).status_code == 429


def test_revocation_is_immediate_for_a_known_key(keyed: Keyed) -> None:
    ann = keyed.keys["ann"]
    assert keyed.me(ann).status_code == 200
    assert keyed.me(ann).status_code == 200  # answered from the cache of known keys
    keyed.assistant.parts.accounts.revoke("ann")
    assert keyed.me(ann).status_code == 401


def _identify(auth: Auth, key: str, client: str) -> int:
    """The HTTP status identify() leads to (200: a caller)."""
    async def run() -> int:
        try:
            await auth.identify(key, client)
        except NotAuthenticatedError:
            return 401
        except Exception as exc:  # starlette's HTTPException carries the 429
            return int(getattr(exc, "status_code", 500))
        return 200

    return anyio.run(run)


def test_limits_are_per_key_id_and_per_address(auth: Auth) -> None:
    key = auth.accounts.add_key("ann")[1]
    wrong = _wrong_secret(key)
    # One key id guessed from many addresses.
    assert [_identify(auth, wrong, f"10.0.0.{i}") for i in range(MAX_FAILURES + 1)] == (
        [401] * MAX_FAILURES + [429])
    # One address guessing many (unknown) key ids.
    made_up = [f"dlp_{i:012x}_{'s' * 40}" for i in range(MAX_FAILURES + 1)]
    assert [_identify(auth, k, "10.9.9.9") for k in made_up] == [401] * MAX_FAILURES + [429]
    # Another address with another key is not affected.
    other = auth.accounts.add_key("bob")[1]
    assert _identify(auth, other, "10.1.1.1") == 200


@pytest.fixture
def auth(settings: Settings) -> Iterator[Auth]:
    with open_assistant(settings, engine=FakeEngine()) as bot:
        parts = bot.parts
        yield Auth(parts.accounts, parts.permissions, settings.user, keys_required=True)


def test_failures_age_out_and_memory_is_bounded() -> None:
    now = [0.0]
    failures = FailedAttempts(limit=3, window=60, max_tracked=100, clock=lambda: now[0])
    for _ in range(3):
        failures.record("client a", "key k")
    assert failures.wait("client b") == 0
    assert failures.wait("client b", "key k") == 60
    now[0] = 45.0
    assert failures.wait("client a") == 15
    now[0] = 60.0
    assert failures.wait("client a", "key k") == 0
    for i in range(1_000):
        failures.record(f"client {i}")
    assert len(failures._times) == 100
