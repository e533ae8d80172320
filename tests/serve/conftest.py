"""A real server (uvicorn on loopback, the real store) around a scripted model, for tests
of what the server does with requests, whatever a model would say."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dialoop.assistant import Assistant, open_assistant
from dialoop.config import load_settings
from dialoop.serve import create_app
from dialoop.serve.server import background_server
from tests.fakes import ScriptedEngine


@pytest.fixture
def bot(dialoop_home) -> Iterator[Assistant]:  # type: ignore[no-untyped-def]
    """An assistant whose model answers ``You said: <the message>``."""
    engine = ScriptedEngine(lambda prompt, adapter: f"You said: {prompt}")
    with open_assistant(load_settings(), engine=engine) as assistant:
        yield assistant


@pytest.fixture
def http(bot: Assistant) -> Iterator[httpx.Client]:
    """A client of ``bot`` served in local mode."""
    with background_server(create_app(bot)) as server, httpx.Client(
            base_url=server.url, timeout=30) as client:
        yield client
