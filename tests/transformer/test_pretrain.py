"""The pre-training recipe: all three architectures run end to end, and a resumed run
is the run that never stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dialoop.errors import InvalidInputError
from dialoop.train.checkpoint import latest_checkpoint, load_checkpoint
from dialoop.transformer.pretrain import PretrainConfig, pretrain

TINY = dict(vocab_size=300, block_size=32, n_layer=1, n_head=2, d_model=32, d_ff=64,
            batch_size=4, eval_every=2, save_every=2, threads=1)


def _run(tmp_path: Path, name: str, arch: str = "decoder", **options: object) -> dict:
    return pretrain(PretrainConfig(arch=arch, out=tmp_path / name, **{**TINY, **options}))  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ["encoder", "decoder", "encdec"])
def test_each_architecture_pretrains_on_the_bundled_corpus_and_reports(
    tmp_path: Path, arch: str
) -> None:
    report = _run(tmp_path, arch, arch, steps=6, lr=3e-3, warmup_steps=2)
    assert report["steps"] == 6
    assert report["tokens"] > 0 and report["tokens_per_second"] > 0
    assert report["evals"][0]["step"] == 2 and report["evals"][-1]["step"] == 6
    assert report["validation_perplexity"] > 1
    assert report["evals"][-1]["validation_loss"] < report["evals"][0]["validation_loss"]
    assert json.loads((tmp_path / arch / "report.json").read_text())["steps"] == 6
    assert list((tmp_path / arch / "tensorboard").glob("events.out.tfevents.*"))
    assert (arch == "encoder") == ("nsp_accuracy" in report)
    assert (arch == "decoder") == (tmp_path / arch / "hf" / "config.json").is_file()


def test_a_resumed_run_continues_from_the_same_step_with_the_same_optimizer_state(
    tmp_path: Path,
) -> None:
    whole = _run(tmp_path, "whole", steps=4)
    _run(tmp_path, "split", steps=2)
    first_half = load_checkpoint(latest_checkpoint(tmp_path / "split"))  # type: ignore[arg-type]
    assert first_half.step == 2
    resumed = _run(tmp_path, "split", steps=4, resume=True)
    assert resumed["resumed_from"] == [2] and resumed["steps"] == 4
    a = load_checkpoint(latest_checkpoint(tmp_path / "whole"))  # type: ignore[arg-type]
    b = load_checkpoint(latest_checkpoint(tmp_path / "split"))  # type: ignore[arg-type]
    assert a.step == b.step == 4
    for name, tensor in a.weights.items():
        torch.testing.assert_close(b.weights[name], tensor, atol=1e-6, rtol=1e-5)
    for key, state in a.optimizer["state"].items():  # AdamW's step count and moments
        for field in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(b.optimizer["state"][key][field], state[field])
    assert resumed["validation_loss"] == pytest.approx(whole["validation_loss"], rel=1e-5)
    # and the first half's optimizer state was really restored, not rebuilt
    assert not torch.equal(first_half.optimizer["state"][0]["exp_avg"],
                           b.optimizer["state"][0]["exp_avg"])


def test_a_run_is_not_overwritten_and_nothing_is_resumed_from_nothing(tmp_path: Path) -> None:
    _run(tmp_path, "run", steps=1)
    with pytest.raises(InvalidInputError, match="already holds a run"):
        _run(tmp_path, "run", steps=1)
    with pytest.raises(InvalidInputError, match="Nothing to resume"):
        _run(tmp_path, "other", steps=1, resume=True)


def test_an_empty_or_too_small_corpus_is_refused_with_what_to_do(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n# only a comment\n")
    with pytest.raises(InvalidInputError, match="holds no text"):
        _run(tmp_path, "empty", data=(empty,), steps=1)
    small = tmp_path / "small.txt"
    small.write_text("Two words.\n")
    with pytest.raises(InvalidInputError, match="too small"):
        _run(tmp_path, "small", data=(small,), steps=1)


def test_the_weights_of_the_best_validation_are_kept_not_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialoop.transformer import pretrain as recipe

    real, planned = recipe._loss, [3.0, 1.0, 2.0]  # validation losses at steps 2, 4, 6

    def loss(arch, model, batch):  # type: ignore[no-untyped-def]
        value, extra = real(arch, model, batch)
        if not model.training:  # an evaluation: the planned value, as a tensor
            value = value * 0 + planned.pop(0)
        return value, extra

    monkeypatch.setattr(recipe, "_loss", loss)
    report = _run(tmp_path, "run", steps=6)
    assert report["kept_step"] == report["best_validation"]["step"] == 4
    assert report["validation_loss"] == 2.0  # the last evaluation is still reported
    model, _, _ = recipe.load_run(tmp_path / "run", "decoder")
    at_4 = load_checkpoint(tmp_path / "run" / "checkpoints" / "step-000004")
    at_6 = load_checkpoint(latest_checkpoint(tmp_path / "run"))  # type: ignore[arg-type]
    kept = model.state_dict()
    for name, tensor in at_4.weights.items():
        torch.testing.assert_close(kept[name], tensor)
    assert any(not torch.equal(kept[n], t) for n, t in at_6.weights.items())
