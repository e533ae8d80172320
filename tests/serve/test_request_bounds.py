"""One chat request cannot tie up the server (issue 12): its size is bounded before
anything is queued or stored, and a client that leaves while its answer waits for an
engine costs nothing and causes no error.

The server is real (uvicorn on loopback, the real store); the model is scripted, since
nothing here depends on what it says.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi import FastAPI

from dialoop.assistant import Assistant, open_assistant
from dialoop.config import load_settings
from dialoop.serve import create_app
from dialoop.serve.scheduler import Scheduler
from dialoop.serve.server import RunningServer, background_server
from tests.fakes import ScriptedEngine


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Answers wait for this (set at the end in any case, so no thread is left behind)."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def bot(dialoop_home, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
        gate: threading.Event) -> Iterator[Assistant]:
    monkeypatch.setenv("DIALOOP_SERVE_MAX_MESSAGES", "50")
    monkeypatch.setenv("DIALOOP_SERVE_MAX_CHARS", "10000")

    def reply(prompt: str, adapter: str | None) -> str:
        gate.wait(30)
        return f"You said: {prompt}"

    with open_assistant(load_settings(), engine=ScriptedEngine(reply)) as assistant:
        yield assistant


@pytest.fixture
def app(bot: Assistant) -> FastAPI:
    return create_app(bot)


@pytest.fixture
def server(app: FastAPI) -> Iterator[RunningServer]:
    with background_server(app) as running:
        yield running


def _body(messages: list[dict], **extra) -> dict:  # type: ignore[no-untyped-def]
    return {"model": "default", "messages": messages, **extra}


def _conversation(n: int, size: int = 10) -> list[dict]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": "x" * size}
            for i in range(n - 1)] + [{"role": "user", "content": "And now?"}]


def test_too_many_messages_get_a_400_and_nothing_is_stored(
        server: RunningServer, bot: Assistant, gate: threading.Event) -> None:
    gate.set()
    response = httpx.post(f"{server.url}/v1/chat/completions", json=_body(_conversation(51)))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "51 messages" in error["message"] and "serve_max_messages" in error["message"]
    assert error["type"] == "invalid_request_error"
    assert bot.parts.sessions.list("local") == []
    ok = httpx.post(f"{server.url}/v1/chat/completions", json=_body(_conversation(50)))
    assert ok.status_code == 200, ok.text  # the limit itself is allowed


def test_too_much_text_gets_a_413_and_nothing_is_stored(
        server: RunningServer, bot: Assistant, gate: threading.Event) -> None:
    gate.set()
    messages = _conversation(3, size=5_000)  # 10,008 characters in all
    response = httpx.post(f"{server.url}/v1/chat/completions", json=_body(messages))
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "request_too_large" and "serve_max_chars" in error["message"]
    assert bot.parts.sessions.list("local") == []


def test_the_default_bounds_are_far_beyond_a_real_conversation() -> None:
    settings = load_settings()
    assert settings.serve_max_messages == 1000
    assert settings.serve_max_chars == 1_000_000


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def test_a_client_that_leaves_while_queued_costs_nothing_and_no_error(
        server: RunningServer, app: FastAPI, bot: Assistant, gate: threading.Event,
        caplog: pytest.LogCaptureFixture) -> None:
    scheduler: Scheduler = app.state.scheduler
    caplog.set_level(logging.WARNING)
    with ThreadPoolExecutor(1) as pool:
        # The first answer holds the only engine until the gate opens.
        first = pool.submit(httpx.post, f"{server.url}/v1/chat/completions",
                            json=_body([{"role": "user", "content": "Hold the engine."}]),
                            timeout=30)
        _wait_for(lambda: scheduler.running == 1, "the first answer runs")
        # The second waits for the engine, and its client goes away.
        body = json.dumps(_body(_conversation(5, size=20))).encode()
        with socket.create_connection((server.host, server.port)) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            _wait_for(lambda: scheduler.waiting == 1, "the second answer waits")
        _wait_for(lambda: any(g.stop.is_set() for g in scheduler._live),
                  "the server sees the client leave")
        gate.set()
        assert first.result().status_code == 200
        _wait_for(lambda: scheduler.running == scheduler.waiting == 0, "all answers end")
    # Only the first conversation was stored: the second never started.
    assert [s.turns for s in bot.parts.sessions.list("local")] == [2]
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert problems == []  # before: KeyError: 'session', answered as a 500

