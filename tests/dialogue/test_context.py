"""The prompt always fits the window: newest turns kept, oldest dropped in blocks, long messages cut."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dialoop.dialogue.context import DROP_BLOCK, build_prompt
from dialoop.engine.llamacpp import LlamaCppEngine
from dialoop.engine.models import bundled_gguf
from dialoop.evidence import Evidence

WINDOW = 512
RESERVE = 128


@pytest.fixture(scope="module")
def small_engine() -> Iterator[LlamaCppEngine]:
    """The real tokenizer and template, with a deliberately small window."""
    engine = LlamaCppEngine(bundled_gguf(), context_window=WINDOW, prefix_cache_bytes=0)
    yield engine
    engine.close()


def _history(n: int) -> list:
    turns = []
    for i in range(n):
        turns += [{"role": "user", "content": f"Question number {i}: tell me about topic {i}."},
                  {"role": "assistant", "content": f"Answer {i}: " + "details " * 12}]
    return turns


def test_long_history_fits_and_keeps_system_and_newest(small_engine: LlamaCppEngine) -> None:
    prompt = build_prompt(small_engine, system="Be brief.", history=_history(30),
                          message="And the last question?", reserve=RESERVE)
    assert prompt.tokens <= WINDOW - RESERVE
    assert prompt.tokens == small_engine.count_tokens(small_engine.render(prompt.messages))
    assert prompt.messages[0] == {"role": "system", "content": "Be brief."}
    assert prompt.messages[-1]["content"] == "And the last question?"
    assert prompt.messages[-2]["content"].startswith("Answer 29")  # newest exchange kept
    assert prompt.dropped > 0 and prompt.dropped % (2 * DROP_BLOCK) == 0


def test_cut_point_moves_in_blocks_so_the_kept_prefix_stays_stable(small_engine: LlamaCppEngine) -> None:
    history = _history(40)
    kept_starts = []
    for n in range(10, 40):
        prompt = build_prompt(small_engine, system=None, history=history[: 2 * n],
                              message="next?", reserve=RESERVE)
        kept_starts.append(prompt.dropped)
    changes = sum(1 for a, b in zip(kept_starts, kept_starts[1:], strict=False) if a != b)
    # 30 turns of growth moved the cut only a few times, each time by whole blocks
    assert 0 < changes <= 30 // (DROP_BLOCK - 1)
    assert all(d % (2 * DROP_BLOCK) == 0 for d in kept_starts)


def test_a_message_too_long_for_the_window_is_cut_with_a_note(small_engine: LlamaCppEngine) -> None:
    huge = "The beginning matters. " + "filler words here " * 2000 + "The question: what now?"
    prompt = build_prompt(small_engine, system="Be brief.", history=_history(3),
                          message=huge, reserve=RESERVE)
    text = prompt.messages[-1]["content"]
    assert prompt.tokens <= WINDOW - RESERVE
    assert "characters cut to fit the context window" in text
    assert text.startswith("The beginning matters.") and text.endswith("what now?")
    assert "your message" in prompt.truncated


def test_evidence_goes_into_the_system_message_and_the_record(small_engine: LlamaCppEngine) -> None:
    facts = [Evidence("lesson", "The CEO of Acme Biotech is Rhea Volkov.", "lesson:7", 0.91)]
    prompt = build_prompt(small_engine, system="Be brief.", history=[], message="Who runs Acme?",
                          reserve=RESERVE, evidence=facts)
    assert prompt.messages[0]["role"] == "system"
    assert "[1] The CEO of Acme Biotech is Rhea Volkov." in prompt.messages[0]["content"]
    assert prompt.describe()["evidence"][0]["source"] == "lesson:7"
