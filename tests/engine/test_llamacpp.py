"""The default engine on the real bundled model."""

from __future__ import annotations

import threading

import pytest

from dialoop.engine import GenerationParams
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.errors import ContextOverflowError, NotFoundError

GREEDY = GenerationParams(max_tokens=48)

HISTORY = [
    {"role": "system", "content": "You are a concise travel guide."},
    {"role": "user", "content": "I am planning a trip to Japan."},
    {"role": "assistant", "content": "Great! Japan has many wonderful places to visit."},
    {"role": "user", "content": "Which city should I see first?"},
]


def _answer(engine: LlamaCppEngine, messages: list, params: GenerationParams = GREEDY):  # type: ignore[no-untyped-def]
    chunks = list(engine.stream(messages, params))
    return "".join(c.text for c in chunks), chunks[-1]


@pytest.mark.parametrize(
    "messages",
    [HISTORY, HISTORY[1:], [{"role": "user", "content": "Ünïcödé — 日本 🎌"}]],
    ids=["system+multi-turn", "no-system", "unicode"],
)
def test_prompt_is_byte_identical_to_hf_apply_chat_template(
    llama_engine: LlamaCppEngine, hf_tokenizer, messages: list  # type: ignore[no-untyped-def]
) -> None:
    ours = llama_engine.render(messages)
    theirs = hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert ours.encode() == theirs.encode()
    # and the tokens llama.cpp evaluates are the ones the HF tokenizer makes of it
    assert llama_engine.count_tokens(ours) == len(hf_tokenizer(theirs, add_special_tokens=False)["input_ids"])


def test_greedy_is_deterministic_even_after_other_work(llama_engine: LlamaCppEngine) -> None:
    question = [{"role": "user", "content": "Name three fruits."}]
    first, last = _answer(llama_engine, question)
    _answer(llama_engine, HISTORY, GenerationParams(temperature=1.0, seed=1, max_tokens=20))
    again, _ = _answer(llama_engine, question)
    assert first == again and first
    assert last.usage is not None  # it stopped by itself unless it reached max_tokens
    assert last.finish_reason == ("length" if last.usage.completion_tokens == 48 else "stop")


def test_next_turn_reuses_the_conversation_prefix(llama_engine: LlamaCppEngine) -> None:
    reply, _ = _answer(llama_engine, HISTORY)
    longer = [*HISTORY, {"role": "assistant", "content": reply}, {"role": "user", "content": "Why?"}]
    _, done = _answer(llama_engine, longer)
    assert done.usage is not None
    # everything up to the new message was already evaluated
    assert done.usage.cached_tokens >= llama_engine.count_tokens(llama_engine.render(HISTORY)) - 8


def test_switching_sessions_keeps_both_caches(llama_engine: LlamaCppEngine) -> None:
    def conversation(topic: str) -> list:
        long = f"Tell me about {topic}. " + " ".join(f"Point {i} about {topic}." for i in range(40))
        return [{"role": "user", "content": long}]

    a, b = conversation("the sea"), conversation("mountains")
    _, first_a = _answer(llama_engine, a)
    _answer(llama_engine, b)  # another session takes over the context
    _, again_a = _answer(llama_engine, a)  # back to the first one
    assert first_a.usage and again_a.usage
    assert again_a.usage.cached_tokens >= again_a.usage.prompt_tokens - 1


def test_stop_sequence_and_max_tokens(llama_engine: LlamaCppEngine) -> None:
    story = [{"role": "user", "content": "Write a long story about a dragon."}]
    text, last = _answer(llama_engine, story, GenerationParams(max_tokens=10))
    assert last.finish_reason == "length" and last.usage and last.usage.completion_tokens == 10
    full, _ = _answer(llama_engine, story, GenerationParams(max_tokens=60))
    word = full.split()[5]
    cut, last = _answer(llama_engine, story, GenerationParams(max_tokens=60, stop=(word,)))
    assert last.finish_reason == "stop" and word not in cut and full.startswith(cut)


def test_cancel_stops_at_the_next_token(llama_engine: LlamaCppEngine) -> None:
    story = [{"role": "user", "content": "Write a long story about a dragon."}]
    chunks = []
    for chunk in llama_engine.stream(story, GenerationParams(max_tokens=400)):
        chunks.append(chunk)
        if len(chunks) == 5:
            threading.Thread(target=llama_engine.cancel).start()
    assert chunks[-1].finish_reason == "cancelled"
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens < 50


def test_prompt_longer_than_the_window_is_refused(llama_engine: LlamaCppEngine) -> None:
    huge = [{"role": "user", "content": "word " * 5000}]
    with pytest.raises(ContextOverflowError, match="context window is 4096"):
        list(llama_engine.stream(huge, GREEDY))


def test_unknown_adapter_is_refused(llama_engine: LlamaCppEngine) -> None:
    with pytest.raises(NotFoundError, match="No adapter named 'ghost'"):
        list(llama_engine.stream(HISTORY, GREEDY, adapter="ghost"))
