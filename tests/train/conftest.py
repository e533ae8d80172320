"""A few dialogues to learn (the tiny random Llama, `tiny_model_dir`, is in tests/conftest.py)."""

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
