"""The encoder–decoder trains on a pairs file by teacher forcing and generates greedily:
a tiny one learns to reverse a few short strings."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from dialoop.cli import cli
from dialoop.errors import InvalidInputError
from dialoop.transformer.objectives import IGNORE
from dialoop.transformer.pretrain import PretrainConfig, pretrain
from dialoop.transformer.seq2seq import Seq2Seq, pair_rows, read_pairs
from dialoop.transformer.tokenizer import Specials, train_tokenizer


def _reversal_pairs(n: int) -> list[tuple[str, str]]:
    rng = random.Random(0)
    words = sorted({"".join(rng.choice("abcdef") for _ in range(rng.randint(3, 4)))
                    for _ in range(n)})
    return [(" ".join(w), " ".join(reversed(w))) for w in words]


def _write_jsonl(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("\n".join(json.dumps({"source": s, "target": t}) for s, t in pairs))
    return path


def test_a_tiny_encoder_decoder_learns_to_reverse_strings(tmp_path: Path) -> None:
    pairs = _reversal_pairs(16)
    out = tmp_path / "run"
    report = pretrain(PretrainConfig(
        arch="encdec", out=out, pairs=_write_jsonl(tmp_path / "reverse.jsonl", pairs),
        steps=150, vocab_size=300, block_size=8, n_layer=2, n_head=2, d_model=64, d_ff=128,
        batch_size=16, lr=5e-3, warmup_steps=10, eval_every=1000, save_every=1000))
    assert report["train_loss"] < 0.3
    assert report["generation"]["pairs"] == 2  # the held-out tenth, greedy, in the report

    model = Seq2Seq.load(out)  # from the run folder, as a user would
    trained = pairs[:-2]
    outputs = model.generate_many([s for s, _ in trained])
    right = sum(o == t for o, (_, t) in zip(outputs, trained, strict=True))
    assert right >= len(trained) - 1, list(zip(outputs, trained, strict=True))
    assert model.generate(trained[0][0]) == outputs[0]


def test_pair_rows_shift_the_target_and_ignore_its_padding() -> None:
    tokenizer = train_tokenizer(["a b c", "c b a"] * 4, 300)
    rows = pair_rows([("a b", "b a")], tokenizer, 6)
    ids = tokenizer.encode("b a").ids
    assert rows["target_in"][0].tolist()[: len(ids) + 1] == [Specials.bos, *ids]
    assert rows["targets"][0].tolist() == [*ids, Specials.eos] + [IGNORE] * (5 - len(ids))
    assert rows["source"].shape == (1, 6) and rows["source"][0, -1] == Specials.pad
    assert torch.equal(rows["target_in"][0, 1: len(ids) + 1], rows["targets"][0, : len(ids)])


def test_tsv_pairs_with_a_header_and_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "qa.tsv"
    path.write_text("source\ttarget\nWhat is two?\tTwo is 2.\n\nHi\tHello\n")
    assert read_pairs(path) == [("What is two?", "Two is 2."), ("Hi", "Hello")]
    path.write_text("just a line\n")
    with pytest.raises(InvalidInputError, match="source<TAB>target"):
        read_pairs(path)


def test_pairs_need_the_encoder_decoder_and_no_corpus(tmp_path: Path) -> None:
    pairs = _write_jsonl(tmp_path / "p.jsonl", _reversal_pairs(4))
    result = CliRunner().invoke(cli, ["train", "pretrain", "--arch", "decoder", "--pairs",
                                      str(pairs), "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "use --arch encdec" in result.output
    result = CliRunner().invoke(cli, ["train", "pretrain", "--arch", "encdec", "--pairs",
                                      str(pairs), "--data", str(pairs),
                                      "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "Can't provide both --data and --pairs" in result.output
