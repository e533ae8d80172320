"""A stopped generation stops while llama.cpp is still evaluating its prompt (issue 12: a
client that left during a 4k-token prompt held the engine for ~160 s on a busy machine).

Times are compared with the time of one 512-token batch measured in the same test, not
with absolute numbers: a full evaluation of the long prompt takes several batches, an
aborted one at most the 0.2 s before the stop plus a fraction of one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import llama_cpp
import pytest

from dialoop.assistant import open_assistant
from dialoop.engine import Chunk, GenerationParams, Message
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.serve.app import create_app
from dialoop.serve.server import background_server

GREEDY = GenerationParams(temperature=0.0, max_tokens=8, seed=1)
BATCH = 512  # Llama's default n_batch: tokens evaluated per llama_decode call


def _text(tokens: int, engine: LlamaCppEngine) -> str:
    """Plain prose of about ``tokens`` tokens."""
    line = "Cats sleep in the sun while dogs bark at the mail carrier every morning. "
    return line * max(1, tokens // engine.count_tokens(line))


def _last(chunks: Iterator[Chunk]) -> Chunk:
    *_, last = chunks
    return last


def _new_scope(name: str) -> str:
    """A cache scope no earlier test used (the engine is shared by the whole session)."""
    return f"{name}-{time.monotonic_ns()}"


def _one_batch_seconds(engine: LlamaCppEngine) -> float:
    """Seconds to evaluate one batch of prompt (in a scope of its own: nothing reused)."""
    prompt: list[Message] = [{"role": "user", "content": _text(BATCH - 20, engine)}]
    start = time.perf_counter()
    last = _last(engine.stream(prompt, GenerationParams(max_tokens=1), cache_scope=_new_scope("timing")))
    assert last.usage is not None and last.usage.cached_tokens == 0
    return time.perf_counter() - start


def test_stop_aborts_prompt_evaluation_and_the_engine_stays_sound(
    llama_engine: LlamaCppEngine,
) -> None:
    one_batch = _one_batch_seconds(llama_engine)
    long: list[Message] = [{"role": "user", "content": _text(3000, llama_engine)}]
    assert llama_engine.count_tokens(llama_engine.render(long)) > 5 * BATCH  # 6+ batches

    ann, reference = _new_scope("ann"), _new_scope("reference")
    stop = threading.Event()
    result: list[Chunk] = []
    worker = threading.Thread(target=lambda: result.append(
        _last(llama_engine.stream(long, GREEDY, cache_scope=ann, stop=stop))))
    start = time.perf_counter()
    worker.start()
    time.sleep(0.2)
    stop.set()
    worker.join(timeout=600)
    took = time.perf_counter() - start
    # Before: the whole prompt (6+ batches) was evaluated first, then the flag was seen.
    assert took < 0.2 + 2 * one_batch, (took, one_batch)  # a full evaluation: 6+ batches
    assert result[0].finish_reason == "cancelled" and result[0].usage is not None
    assert result[0].usage.completion_tokens == 0

    # The next request of that user works: nothing of the aborted prompt is reused (none
    # of it was evaluated), it answers as from scratch, and a repeat reuses all but the
    # last token. (Answers are compared at equal reuse: a reused KV cache can change a
    # greedy answer by rounding.)
    follow: list[Message] = [{"role": "user", "content": "Name three colours."}]
    reused = _last_with_text(llama_engine.stream(follow, GREEDY, cache_scope=ann))
    again = _last_with_text(llama_engine.stream(follow, GREEDY, cache_scope=ann))
    fresh = _last_with_text(llama_engine.stream(follow, GREEDY, cache_scope=reference))
    assert reused[1].usage is not None and again[1].usage is not None
    assert reused[1].usage.cached_tokens == 0 and reused[0] == fresh[0] != ""
    assert reused[1].finish_reason in ("stop", "length")
    assert again[1].usage.cached_tokens == again[1].usage.prompt_tokens - 1


def test_stop_keeps_the_evaluated_batches_consistent(llama_engine: LlamaCppEngine) -> None:
    """Aborted after some whole batches: those stay in the cache and nothing beyond them,
    and a prompt sharing them reuses them (and only them)."""
    one_batch = _one_batch_seconds(llama_engine)
    body = _text(3000, llama_engine)
    long: list[Message] = [{"role": "user", "content": body}]
    bob = _new_scope("bob")
    stop = threading.Event()
    threading.Timer(2.5 * one_batch, stop.set).start()  # about the third of six batches
    last = _last(llama_engine.stream(long, GREEDY, cache_scope=bob, stop=stop))
    assert last.finish_reason == "cancelled"
    llm = llama_engine._llm  # white box: the KV cache holds exactly the counted tokens
    evaluated = llm.n_tokens
    assert evaluated % BATCH == 0 and evaluated < 6 * BATCH
    memory = llama_cpp.llama_get_memory(llm.ctx)
    assert llama_cpp.llama_memory_seq_pos_max(memory, 0) == evaluated - 1

    # A shorter prompt that shares about 700 tokens with the aborted one.
    short: list[Message] = [{"role": "user", "content": body[: len(body) * 700 // 3000]}]
    reused = _last_with_text(llama_engine.stream(short, GREEDY, cache_scope=bob))
    again = _last_with_text(llama_engine.stream(short, GREEDY, cache_scope=bob))
    assert reused[0] and reused[1].usage is not None and again[1].usage is not None
    # The short prompt's tokens match the long one's up to where its text was cut (the cut
    # word tokenizes differently), and its last token is always evaluated anew.
    shared = _common_prefix(llama_engine._prompt_tokens(long), llama_engine._prompt_tokens(short))
    assert reused[1].usage.cached_tokens == min(evaluated, shared,
                                                reused[1].usage.prompt_tokens - 1)
    assert again[1].usage.cached_tokens == again[1].usage.prompt_tokens - 1


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _last_with_text(chunks: Iterator[Chunk]) -> tuple[str, Chunk]:
    pieces = list(chunks)
    return "".join(c.text for c in pieces), pieces[-1]


@pytest.mark.slow
def test_a_client_that_leaves_during_a_long_prompt_frees_the_engine(
    llama_engine: LlamaCppEngine,
) -> None:
    one_batch = _one_batch_seconds(llama_engine)
    bot = open_assistant(engine=llama_engine, learn_memory=False)
    long = {"model": "default", "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": _text(3000, llama_engine)}]}
    try:
        with background_server(create_app(bot)) as server:
            with pytest.raises(httpx.ReadTimeout):  # the client gives up and disconnects
                httpx.post(f"{server.url}/v1/chat/completions", json=long, timeout=0.5)
            left = time.perf_counter()
            while httpx.get(f"{server.url}/api/health").json()["answers"]["running"]:
                assert time.perf_counter() - left < 1 + one_batch, "the engine is still busy"
                time.sleep(0.05)
            short = {"model": "default", "max_tokens": 4,
                     "messages": [{"role": "user", "content": "Hello!"}]}
            answer = httpx.post(f"{server.url}/v1/chat/completions", json=short, timeout=60)
            assert answer.status_code == 200, answer.text
    finally:
        bot.close()
