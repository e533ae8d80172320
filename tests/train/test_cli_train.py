"""The train and eval commands as a user runs them, killed and resumed for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "from dialoop.cli import main; main()", *args]


def _env(home: Path) -> dict[str, str]:
    # One thread: on a busy 2-core machine two threads wait on each other at every operation.
    return {**os.environ, "DIALOOP_HOME": str(home), "DIALOOP_THREADS": "1"}


def test_a_killed_run_resumes_from_its_last_checkpoint(
    tiny_model_dir: Path, dialogue_file: Path, dialoop_home: Path
) -> None:
    args = ["train", "sft", str(dialogue_file), "--name", "tiny", "--model", str(tiny_model_dir),
            "--validation", str(dialogue_file), "--max-steps", "25", "--save-every", "5",
            "--eval-every", "5", "--grad-accum", "1", "--lr", "1e-2", "--threads", "1",
            "--precision", "fp32"]
    proc = subprocess.Popen(_command(dialoop_home, *args), env=_env(dialoop_home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = dialoop_home / "runs" / "tiny"
    deadline = time.monotonic() + 300
    while not list(runs.glob("*/checkpoints/step-000010")):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no chance to save anything more
    proc.wait()
    (run_dir,) = runs.iterdir()
    last = max(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-??????"))
    assert last >= 10
    assert not (run_dir / "report.json").exists()

    resumed = subprocess.run(_command(dialoop_home, *args, "--resume", "--json"),
                             env=_env(dialoop_home), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    report = json.loads(resumed.stdout)
    assert report["run_dir"] == str(run_dir)
    assert report["resumed_from"] == [last]
    assert report["steps"] == 25
    assert [h["step"] for h in report["history"]] == list(range(1, 26))
    assert report["adapter"] == "tiny@v1"


def test_bad_data_is_one_line_with_the_line_number_and_nothing_is_written(
    tmp_path: Path, dialoop_home: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, '
                   '{"role": "assistant", "content": "hello"}]}\n{"messages": 3}\n')
    result = subprocess.run(_command(dialoop_home, "train", "sft", str(bad), "--name", "x"),
                            env=_env(dialoop_home), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: bad.jsonl:2: 'messages' must be a non-empty list."
    assert not (dialoop_home / "runs").exists()


def test_eval_model_compares_base_and_adapter(
    tiny_model_dir: Path, dialogue_file: Path, dialoop_home: Path
) -> None:
    args = ["train", "sft", str(dialogue_file), "--name", "tiny", "--model", str(tiny_model_dir),
            "--validation", str(dialogue_file), "--max-steps", "8", "--grad-accum", "1",
            "--lr", "1e-2", "--threads", "1", "--precision", "fp32"]
    trained = subprocess.run(_command(dialoop_home, *args), env=_env(dialoop_home),
                             capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr[-2000:]
    out = dialoop_home / "eval.json"
    evaluated = subprocess.run(
        _command(dialoop_home, "eval", "model", "--data", str(dialogue_file), "--adapter", "tiny",
                 "--model", str(tiny_model_dir), "--engine", "torch", "--max-new-tokens", "12",
                 "--out", str(out)),
        env=_env(dialoop_home), capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    table = evaluated.stdout
    assert "| metric | base | tiny@v1 | change |" in table
    for metric in ("loss", "perplexity", "token_accuracy", "bleu", "rouge_l", "exact_match"):
        assert f"| {metric} |" in table
    assert "| loss |" in table and "(better)" in table.split("| loss |")[1].split("\n")[0]
    saved = json.loads(out.read_text())
    assert len(saved["tiny@v1"]["samples"]) == 6  # every assistant turn of the 4 dialogues
