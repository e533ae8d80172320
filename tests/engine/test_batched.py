"""Batched decoding: several answers at once in one llama.cpp context, on the real bundled
model. Each answer is its own: its greedy text, its stop, its adapter, its KV sequence."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dialoop.assistant import open_assistant
from dialoop.config import load_settings
from dialoop.engine import Chunk, GenerationParams
from dialoop.engine.batched import BatchedEngine
from dialoop.engine.lora import export_lora_gguf
from dialoop.engine.models import DEFAULT_MODEL_NAME, bundled_gguf
from dialoop.errors import ContextOverflowError, NotFoundError
from dialoop.serve import create_app
from dialoop.serve.pool import open_engines
from dialoop.serve.server import background_server
from tests.lora_files import random_lora

pytestmark = pytest.mark.slow

QUESTIONS = ["What is the capital of Japan?", "Write a short poem about the sea.",
             "Why is the sky blue?", "What is a prime number?"]
GREEDY = GenerationParams(max_tokens=24)


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


@pytest.fixture(scope="module")
def batched() -> Iterator[BatchedEngine]:
    engine = BatchedEngine(bundled_gguf(), slots=8, name=DEFAULT_MODEL_NAME,
                           context_window=1024, threads=1)
    yield engine
    engine.close()


def run(engine: BatchedEngine, question: str, params: GenerationParams = GREEDY,
        **kwargs) -> list[Chunk]:  # type: ignore[no-untyped-def]
    return list(engine.stream(ask(question), params, **kwargs))


def together(jobs: list) -> list:  # type: ignore[type-arg]
    """Run the callables ``jobs`` at once, each on its own thread; their results in order."""
    results: list = [None] * len(jobs)  # type: ignore[type-arg]

    def work(i: int) -> None:
        try:
            results[i] = jobs[i]()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return results


def text(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks)


def test_answers_decoded_together_are_each_their_own(batched: BatchedEngine) -> None:
    """Greedy answers among 7 others equal the same answers run alone (deterministic on this
    CPU: each sequence's rows go through the same kernels), with their own usage."""
    alone = {q: run(batched, q) for q in QUESTIONS}
    mixed = together([lambda q=q: run(batched, q) for q in QUESTIONS * 2])
    for q, chunks in zip(QUESTIONS * 2, mixed, strict=True):
        assert text(chunks) == text(alone[q]), q
        last = chunks[-1]
        assert last.finish_reason == alone[q][-1].finish_reason
        assert last.usage is not None and last.usage.completion_tokens <= GREEDY.max_tokens
        assert last.usage.completion_tokens == alone[q][-1].usage.completion_tokens
        assert last.usage.prompt_tokens == batched.count_tokens(batched.render(ask(q)))
    assert {c[-1].finish_reason for c in mixed} == {"stop", "length"}  # Tokyo stops early


def test_stop_ends_one_answer_and_not_the_others(batched: BatchedEngine) -> None:
    long = GenerationParams(max_tokens=48, temperature=0.8, seed=1, stop=())
    stop = threading.Event()

    def stopped() -> list[Chunk]:
        out = []
        for chunk in batched.stream(ask("Tell me a long story."), long, stop=stop):
            out.append(chunk)
            stop.set()  # after the first piece of text
        return out

    first, *others = together([stopped] + [lambda: run(batched, QUESTIONS[1], long)] * 3)
    assert first[-1].finish_reason == "cancelled"
    assert first[-1].usage.completion_tokens < long.max_tokens
    for chunks in others:
        assert chunks[-1].finish_reason == "length"
        assert chunks[-1].usage.completion_tokens == long.max_tokens


def test_a_stop_string_and_closing_the_iterator_end_that_answer(
        batched: BatchedEngine) -> None:
    chunks = run(batched, QUESTIONS[0], GenerationParams(max_tokens=24, stop=("Tokyo",)))
    assert text(chunks) == "The capital of Japan is " and chunks[-1].finish_reason == "stop"
    stream = batched.stream(ask(QUESTIONS[1]), GREEDY)
    next(stream)
    stream.close()  # the slot is given back: eight more answers still fit
    assert all(len(c) > 1 for c in together([lambda: run(batched, QUESTIONS[2])] * 8))


def test_kv_state_is_reused_within_a_scope_and_never_across(batched: BatchedEngine) -> None:
    first, again, bob = [run(batched, QUESTIONS[3], cache_scope=scope)
                         for scope in ("ann", "ann", "bob")]
    assert first[-1].usage.cached_tokens == 0
    assert again[-1].usage.cached_tokens == again[-1].usage.prompt_tokens - 1
    assert bob[-1].usage.cached_tokens == 0  # ann's identical prompt is not bob's
    assert text(first) == text(again) == text(bob)


def test_each_batch_is_one_run_of_slots_in_order(batched: BatchedEngine,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """llama.cpp decodes a batch over per-sequence KV streams in one pass only for a run of
    consecutive sequence ids, so the scheduler writes every batch in slot order, whatever
    order the answers came in, and fills an idle slot between two running answers with a
    token it removes after the decode: the idle slot's kept state still serves its scope."""
    first = {i: run(batched, q, cache_scope=f"order-{i}") for i, q in enumerate(QUESTIONS)}
    slot = {scope: seq for seq, (scope, _, _) in batched._kept.items()}
    lib, seen = batched._lib, []

    class Recording:
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(lib, name)

        def llama_decode(self, ctx, batch):  # type: ignore[no-untyped-def]
            seen.append([batch.seq_id[i][0] for i in range(batch.n_tokens)])
            return lib.llama_decode(ctx, batch)

    monkeypatch.setattr(batched, "_lib", Recording())
    order = sorted(range(len(QUESTIONS)), key=lambda i: -slot[f"order-{i}"])
    results = together([lambda i=i: run(batched, QUESTIONS[i], cache_scope=f"order-{i}")
                        for i in order])  # admitted last slot first
    assert all(r[-1].usage.cached_tokens > 0 for r in results)  # each found its own slot
    assert any(len(set(seqs)) == len(QUESTIONS) for seqs in seen)  # decoded together
    assert all(seqs == sorted(seqs) for seqs in seen)

    lowest, highest = min(order, key=lambda i: slot[f"order-{i}"]), order[0]
    seen.clear()
    together([lambda i=i: run(batched, QUESTIONS[i], cache_scope=f"order-{i}")
              for i in (lowest, highest)])  # the slots between them are idle
    runs = [sorted(set(seqs)) for seqs in seen]
    assert all(seqs == list(range(seqs[0], seqs[-1] + 1)) for seqs in runs)  # no gaps
    assert any(len(seqs) > 2 for seqs in runs)  # idle slots filled
    for i in set(range(len(QUESTIONS))) - {lowest, highest}:  # the filled slots' states
        again = run(batched, QUESTIONS[i], cache_scope=f"order-{i}")
        assert again[-1].usage.cached_tokens == again[-1].usage.prompt_tokens - 1
        assert text(again) == text(first[i])


def test_an_adapter_answer_and_a_base_answer_decode_with_their_own_weights(
        batched: BatchedEngine, tmp_path: Path) -> None:
    folder = random_lora(tmp_path / "lora", seed=1, std=0.3)
    export_lora_gguf(folder, folder / "adapter.gguf", base_gguf=bundled_gguf())
    batched.load_adapter("t@v1", folder / "adapter.gguf")
    try:
        base = text(run(batched, QUESTIONS[1]))
        tuned = text(run(batched, QUESTIONS[1], adapter="t@v1"))
        assert base != tuned
        mixed = together([lambda: run(batched, QUESTIONS[1], adapter="t@v1"),
                          lambda: run(batched, QUESTIONS[1]),
                          lambda: run(batched, QUESTIONS[1], adapter="t@v1"),
                          lambda: run(batched, QUESTIONS[1])])
        assert [text(c) for c in mixed] == [tuned, base, tuned, base]
    finally:
        batched.unload_adapter("t@v1")
    with pytest.raises(NotFoundError):
        run(batched, QUESTIONS[1], adapter="t@v1")


def test_a_prompt_longer_than_an_answers_window_is_refused(batched: BatchedEngine) -> None:
    with pytest.raises(ContextOverflowError):
        batched.stream(ask("sea " * 2000), GREEDY)
    assert text(run(batched, QUESTIONS[0]))  # and the engine still answers


def test_the_server_answers_16_clients_with_the_batched_engine(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALOOP_BATCH_SLOTS", "4")
    monkeypatch.setenv("DIALOOP_CONTEXT_WINDOW", "1024")
    monkeypatch.setenv("DIALOOP_THREADS", "1")
    settings = load_settings()
    engine = open_engines(settings, 1)
    assert isinstance(engine, BatchedEngine)
    body = {"model": "default", "max_tokens": 8,
            "messages": [{"role": "user", "content": "Hello!"}]}
    try:
        with open_assistant(settings, engine=engine) as bot, \
                background_server(create_app(bot, max_waiting=16)) as server:
            def post() -> httpx.Response:
                return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=600)
            responses = together([post] * 16)
    finally:
        engine.close()
    assert [r.status_code for r in responses] == [200] * 16
    assert all(r.json()["usage"]["completion_tokens"] <= 8 for r in responses)
