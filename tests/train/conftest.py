"""A tiny random Llama with the real model's tokenizer, and a few dialogues to learn."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

DIALOGUES = [
    [{"role": "user", "content": "When do you open?"},
     {"role": "assistant", "content": "We open at nine."},
     {"role": "user", "content": "And close?"},
     {"role": "assistant", "content": "At six in the evening."}],
    [{"role": "system", "content": "You work at a shop."},
     {"role": "user", "content": "How much is shipping?"},
     {"role": "assistant", "content": "Shipping costs four dollars."}],
    [{"role": "user", "content": "Can I return a lamp?"},
     {"role": "assistant", "content": "Yes, within thirty days."},
     {"role": "user", "content": "Thanks!"},
     {"role": "assistant", "content": "You are welcome."}],
    [{"role": "user", "content": "I want a human."},
     {"role": "assistant", "content": "I am connecting you to a colleague."}],
]


@pytest.fixture(scope="session")
def tiny_model_dir(hf_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """A 2-layer Llama (hidden 64) with random weights and SmolLM2's tokenizer and template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(hf_tokenizer), hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=hf_tokenizer.bos_token_id, eos_token_id=hf_tokenizer.eos_token_id,
        pad_token_id=hf_tokenizer.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    hf_tokenizer.save_pretrained(folder)
    return folder


def _write_jsonl(path: Path, dialogues: list[list[dict]]) -> Path:
    path.write_text("".join(json.dumps({"messages": d}) + "\n" for d in dialogues))
    return path


@pytest.fixture
def write_jsonl() -> Callable[[Path, list[list[dict]]], Path]:
    """Write dialogues (lists of messages) as an OpenAI-format JSONL file."""
    return _write_jsonl


@pytest.fixture
def tiny_dialogues() -> list[list[dict]]:
    return [list(d) for d in DIALOGUES]


@pytest.fixture
def dialogue_file(tmp_path: Path) -> Path:
    return _write_jsonl(tmp_path / "train.jsonl", DIALOGUES)
