"""Packing: no padding, no attention or loss across dialogues, every assistant token kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from dialoop.train.chat_data import IGNORE
from dialoop.train.data import Dialogue
from dialoop.train.packing import encode_dialogues, pack, row_loss


def _dialogues(raw: list[list[dict]]) -> list[Dialogue]:
    return [Dialogue(tuple(d)) for d in raw]  # type: ignore[arg-type]


def test_targets_are_exactly_the_assistant_turns_shifted_by_one(
    hf_tokenizer: Any, tiny_dialogues: list[list[dict]]
) -> None:
    chat = tiny_dialogues[0]  # two assistant turns
    (seq,) = encode_dialogues(hf_tokenizer, _dialogues([chat]), max_length=512)
    # position t predicts token t+1: the targets are the next tokens where labelled
    for t, target in enumerate(seq.targets):
        if target != IGNORE:
            assert target == seq.input_ids[t + 1]
    predicted = [t for t in seq.targets if t != IGNORE]
    assert hf_tokenizer.decode(predicted) == (
        "We open at nine.<|im_end|>\nAt six in the evening.<|im_end|>\n")
    # what predicts them: the last token of each "<|im_start|>assistant\n" opener, and the answer
    first = next(t for t, x in enumerate(seq.targets) if x != IGNORE)
    assert hf_tokenizer.decode(seq.input_ids[: first + 1]).endswith("<|im_start|>assistant\n")


def test_packing_fills_rows_without_splitting_or_losing_dialogues(
    hf_tokenizer: Any, tiny_dialogues: list[list[dict]]
) -> None:
    seqs = encode_dialogues(hf_tokenizer, _dialogues(tiny_dialogues * 5), max_length=512)
    rows = pack(seqs, 128, seed=0)
    assert all(r.n_tokens <= 128 for r in rows)
    assert sum(r.n_dialogues for r in rows) == 20
    assert sum(r.n_tokens for r in rows) == sum(len(s.input_ids) for s in seqs)
    assert sum(r.n_targets for r in rows) == sum(
        sum(t != IGNORE for t in s.targets) for s in seqs)
    assert len(rows) <= -(-sum(len(s.input_ids) for s in seqs) // 128) + 2  # nearly full rows
    for r in rows:  # positions restart at 0 for every dialogue in the row
        assert int((r.position_ids[0] == 0).sum()) == r.n_dialogues


def test_a_packed_row_gives_each_dialogue_the_loss_it_has_alone(
    tiny_model_dir: Path, hf_tokenizer: Any, tiny_dialogues: list[list[dict]]
) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    seqs = encode_dialogues(hf_tokenizer, _dialogues(tiny_dialogues), max_length=512)
    (packed,) = pack(seqs, 1024, seed=0)
    assert packed.n_dialogues == 4
    alone = [pack([s], 1024, seed=0)[0] for s in seqs]
    with torch.no_grad():
        together, _ = row_loss(model, packed)
        separately = sum(row_loss(model, r)[0] for r in alone)
    assert float(together) == pytest.approx(float(separately), rel=1e-4)


def test_long_dialogues_are_cut_and_answerless_remains_dropped(
    hf_tokenizer: Any, tiny_dialogues: list[list[dict]]
) -> None:
    seqs = encode_dialogues(hf_tokenizer, _dialogues(tiny_dialogues), max_length=20)
    # the system prompt the template adds fills 20 tokens before any answer: nothing to learn
    assert seqs == []
    seqs = encode_dialogues(hf_tokenizer, _dialogues(tiny_dialogues), max_length=60)
    assert seqs and all(len(s.input_ids) <= 60 for s in seqs)
