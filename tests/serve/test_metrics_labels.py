"""Clients cannot grow the metrics: made-up methods and paths share a few series.
Issue 12, medium #5 (3,000 requests had made 6,018 series)."""

from __future__ import annotations

import asyncio
import random
import string

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from dialoop.assistant import open_assistant
from dialoop.config import Settings
from dialoop.serve import create_app
from tests.fakes import FakeEngine


def _series(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(s.name, tuple(sorted(s.labels.items())))
            for family in registry.collect() if family.name.startswith("dialoop_http")
            for s in family.samples}


async def _call(app: FastAPI, method: str, path: str) -> int:
    """One request straight into the ASGI app (3,000 over loopback take half a minute)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"127.0.0.1")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])  # type: ignore[call-overload]


def test_random_methods_and_paths_make_a_bounded_number_of_series(settings: Settings) -> None:
    rng = random.Random(12)

    def word(n: int) -> str:
        return "".join(rng.choices(string.ascii_letters, k=n))

    known = ["/api/health", "/api/sessions/{}", "/v1/models", "/static/{}"]

    async def flood(app: FastAPI) -> set[int]:
        statuses = set()
        for i in range(3_000):
            method = rng.choice(["GET", "POST", "DELETE", word(6).upper(), word(3)])
            path = (rng.choice(known).format(word(8)) if i % 10 == 0
                    else "/" + "/".join(word(5) for _ in range(rng.randint(1, 3))))
            statuses.add(await _call(app, method, path))
        return statuses

    with open_assistant(settings, engine=FakeEngine()) as bot:
        app = create_app(bot)
        before = len(_series(app.state.metrics.registry))
        statuses = asyncio.run(flood(app))
        after = _series(app.state.metrics.registry)
    assert {200, 404, 405} <= statuses
    methods = {dict(labels).get("method") for _, labels in after} - {None}
    routes = {dict(labels).get("route") for _, labels in after} - {None}
    assert methods == {"GET", "POST", "DELETE", "other"}
    assert routes == {"/api/health", "/api/sessions/{ref}", "/v1/models", "unmatched"}
    # A few series per (method, route, status), whatever was sent: 3,000 requests must
    # not make more than a small constant number.
    assert before < len(after) < 200
