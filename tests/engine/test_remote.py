"""The remote engine against a real llama.cpp OpenAI server started here on loopback."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from dialoop.engine import GenerationParams
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.engine.models import bundled_gguf
from dialoop.engine.remote import RemoteEngine
from dialoop.errors import EngineError
from tests.integration.cli import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_gguf()),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("llama_cpp.server did not start within 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_answers_like_the_local_engine(server_url: str, llama_engine: LlamaCppEngine) -> None:
    engine = RemoteEngine(server_url)
    question = [{"role": "user", "content": "What is the capital of Japan?"}]
    params = GenerationParams(max_tokens=30, repeat_penalty=1.0)
    chunks = list(engine.stream(question, params))
    remote = "".join(c.text for c in chunks)
    local_chunks = list(llama_engine.stream(question, params))
    local = "".join(c.text for c in local_chunks)
    assert remote and remote == local
    assert chunks[-1].finish_reason == local_chunks[-1].finish_reason
    assert len(chunks) > 2  # streamed in pieces


def test_counts_tokens_with_the_servers_tokenizer(server_url: str,
                                                   llama_engine: LlamaCppEngine) -> None:
    engine = RemoteEngine(server_url)
    text = "The quick brown fox jumps over the lazy dog."
    assert engine.count_tokens(text) == llama_engine.count_tokens(text)


def test_max_tokens_is_honoured(server_url: str) -> None:
    engine = RemoteEngine(server_url)
    story = [{"role": "user", "content": "Write a long story about a dragon."}]
    last = list(engine.stream(story, GenerationParams(max_tokens=8)))[-1]
    assert last.finish_reason == "length"


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(EngineError, match="Cannot reach the model server at http://127.0.0.1:9/v1"):
        RemoteEngine("http://127.0.0.1:9/v1")
