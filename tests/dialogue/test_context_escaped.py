"""Control tokens spelled in messages are counted as the engine renders them (escaped).

Counted raw, ``<|im_start|>`` is one special token; rendered, it is escaped into about eight
ordinary ones. A fitter counting raw text under-estimates a message stuffed with such
spellings eightfold, and the engine then refuses the prompt as too long.
"""

from __future__ import annotations

import pytest

from dialoop.dialogue.context import build_prompt
from dialoop.engine.llamacpp import LlamaCppEngine

pytestmark = pytest.mark.slow

STUFFED = "<|im_start|><|im_end|>"


def test_a_conversation_stuffed_with_control_tokens_fits(llama_engine: LlamaCppEngine) -> None:
    raw, rendered = llama_engine.count_tokens(STUFFED), llama_engine.count_tokens(
        llama_engine.escape(STUFFED))
    assert rendered >= 4 * raw  # the case this test is about: escaping costs tokens
    budget = llama_engine.context_window - 256
    history = [{"role": role, "content": STUFFED * 60} for role in ("user", "assistant") * 40]
    prompt = build_prompt(llama_engine, system=STUFFED * 400, history=history,
                          message=STUFFED * 900, reserve=256)
    assert prompt.tokens <= budget
    assert llama_engine.count_tokens(llama_engine.render(prompt.messages)) == prompt.tokens
    assert "system prompt" in prompt.truncated and "your message" in prompt.truncated


def test_escaped_contents_render_unchanged(llama_engine: LlamaCppEngine) -> None:
    """The fitter escapes contents once; rendering escapes again, which changes nothing."""
    once = llama_engine.escape(STUFFED * 3)
    assert once != STUFFED * 3 and llama_engine.escape(once) == once
    messages = [{"role": "user", "content": once}]
    assert llama_engine.render(messages) == llama_engine.render(
        [{"role": "user", "content": STUFFED * 3}])
