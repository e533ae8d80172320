"""`dialoop train pretrain` as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialoop.cli import cli


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALOOP_THREADS", "1")


def test_pretrain_decoder_writes_checkpoint_report_and_a_transformers_folder(
    dialoop_home: Path,
) -> None:
    result = CliRunner().invoke(cli, ["train", "pretrain", "--arch", "decoder", "--steps", "3"])
    assert result.exit_code == 0, result.output
    run = dialoop_home / "runs" / "pretrain-decoder"
    assert (run / "checkpoints" / "step-000003" / "weights.safetensors").is_file()
    report = json.loads((run / "report.json").read_text())
    assert report["steps"] == 3 and report["tokens"] == 3 * 8 * 64
    assert (run / "hf" / "config.json").is_file() and (run / "hf" / "tokenizer.json").is_file()
    assert "3 steps" in result.output and "validation perplexity" in result.output

    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(str(run / "hf")).config.model_type == "llama"

    again = CliRunner().invoke(cli, ["train", "pretrain", "--arch", "decoder", "--steps", "4",
                                     "--resume", "--json"])
    assert again.exit_code == 0, again.output
    resumed = json.loads(again.output[again.output.index("{"):])
    assert resumed["resumed_from"] == [3] and resumed["steps"] == 4


def test_a_missing_data_file_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "pretrain", "--arch", "encoder",
                                      "--data", str(tmp_path / "nope.txt")])
    assert result.exit_code == 2
    assert "nope.txt" in result.output and "does not exist" in result.output


def test_an_empty_corpus_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = CliRunner().invoke(cli, ["train", "pretrain", "--arch", "decoder",
                                      "--data", str(empty), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "holds no text" in result.output


def test_the_architecture_is_required() -> None:
    result = CliRunner().invoke(cli, ["train", "pretrain"])
    assert result.exit_code == 2 and "--arch" in result.output


def test_gguf_export_of_a_finished_run_with_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = CliRunner().invoke(cli, ["train", "pretrain", "--arch", "decoder", "--steps", "2",
                                     "--out", str(run)])
    assert first.exit_code == 0, first.output
    assert not (run / "decoder.gguf").exists()
    again = CliRunner().invoke(cli, ["train", "pretrain", "--arch", "decoder", "--steps", "2",
                                     "--out", str(run), "--resume", "--gguf"])
    assert again.exit_code == 0, again.output
    assert f"dialoop chat --model {run / 'decoder.gguf'}" in again.output
    assert json.loads((run / "report.json").read_text())["steps"] == 2  # nothing more trained

    from dialoop.engine.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(run / "decoder.gguf", threads=1, context_window=64)
    assert engine.render([{"role": "user", "content": "Hi"}]) == \
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_gguf_is_refused_for_an_encoder(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "pretrain", "--arch", "encoder", "--gguf",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--gguf exports a decoder" in result.output
