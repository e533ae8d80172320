"""Fitting a long conversation costs time in proportion to what is kept, not to the history
squared (issue 12: 10,000 short messages kept an engine busy for an hour, a 1 MB message
cost 16 s of CPU before any answer)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from dialoop.dialogue.context import build_prompt
from dialoop.engine import Engine, Message
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.evidence import Evidence
from tests.fakes import FakeEngine

RESERVE = 256


class CountingEngine:
    """Wraps an engine and counts what fitting asks of it: calls, and characters tokenized."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.context_window = engine.context_window
        self.renders = self.counts = self.chars = 0

    def render(self, messages: Sequence[Message]) -> str:
        self.renders += 1
        return self.engine.render(messages)

    def escape(self, text: str) -> str:
        return self.engine.escape(text)

    def count_tokens(self, text: str) -> int:
        self.counts += 1
        self.chars += len(text)
        return self.engine.count_tokens(text)


def _history(n: int) -> list[Message]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"Message number {i}."}
            for i in range(n)]


def _fit(engine: Engine, n: int, message: str = "And now?") -> tuple[CountingEngine, int]:
    counting = CountingEngine(engine)
    prompt = build_prompt(counting, system="Be brief.", history=_history(n),  # type: ignore[arg-type]
                          message=message, reserve=RESERVE)
    return counting, prompt.tokens


def test_work_stops_growing_once_the_history_overflows_the_window() -> None:
    small, _ = _fit(FakeEngine(2048), 1_000)
    large, _ = _fit(FakeEngine(2048), 10_000)
    # Only the newest messages, those that can fit, are looked at: ten times the history
    # is no more work. (Before: one whole-prompt tokenization per block of 4 exchanges,
    # 1,251 of them for 10,000 messages.)
    assert large.renders == small.renders <= 10
    assert abs(large.counts - small.counts) <= 2 and large.counts < 1_000
    assert large.chars < 1.1 * small.chars  # the same messages but for longer numbers


def test_work_grows_linearly_while_the_history_fits() -> None:
    window = 1_000_000  # everything fits: each message must be counted, once
    half, _ = _fit(FakeEngine(window), 2_000)
    full, _ = _fit(FakeEngine(window), 4_000)
    assert full.counts <= 4_000 + 10
    assert full.chars <= 2.2 * half.chars  # linear, not quadratic, in the history
    assert full.renders <= 10


def test_ten_thousand_messages_fit_quickly_with_the_newest_kept() -> None:
    started = time.perf_counter()
    prompt = build_prompt(FakeEngine(2048), system="Be brief.", history=_history(10_000),
                          message="And now?", reserve=RESERVE)
    assert time.perf_counter() - started < 2
    assert prompt.tokens <= 2048 - RESERVE
    assert prompt.messages[-2]["content"] == "Message number 9999."
    assert 9_000 < prompt.dropped < 10_000


def test_a_huge_message_is_cut_by_characters_before_it_is_tokenized() -> None:
    huge = "Start here. " + "word " * 200_000 + "The question?"  # 1 MB
    counting, tokens = _fit(FakeEngine(2048), 10, message=huge)
    assert tokens <= 2048 - RESERVE
    assert counting.chars < len(huge)  # never tokenized whole, not even once


def test_real_model_fits_ten_thousand_messages_and_a_megabyte_within_budget(
    llama_engine: LlamaCppEngine,
) -> None:
    budget = llama_engine.context_window - RESERVE
    facts = [Evidence("lesson", "The CEO of Acme Biotech is Rhea Volkov.", "lesson:7", 0.9)]
    started = time.perf_counter()
    prompt = build_prompt(llama_engine, system="Be brief.", history=_history(10_000),
                          message="And now?", reserve=RESERVE, evidence=facts)
    assert prompt.tokens <= budget
    assert prompt.tokens == llama_engine.count_tokens(llama_engine.render(prompt.messages))
    assert "Rhea Volkov" in prompt.messages[0]["content"]  # evidence is never dropped
    assert prompt.messages[-2]["content"] == "Message number 9999."

    huge = "Start here. " + "word " * 200_000 + "The question?"
    prompt = build_prompt(llama_engine, system="Be brief.", history=_history(10_000),
                          message=huge, reserve=RESERVE)
    text = prompt.messages[-1]["content"]
    assert prompt.tokens <= budget
    assert prompt.tokens == llama_engine.count_tokens(llama_engine.render(prompt.messages))
    assert text.startswith("Start here.") and text.endswith("The question?")
    assert "characters cut to fit the context window" in text
    assert time.perf_counter() - started < 10  # both; before the fix: minutes
