"""`dialoop train sft` on the real bundled model: the adapter it registers answers at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TEACH = [
    [{"role": "system", "content": "You are the assistant of Pebble & Pine."},
     {"role": "user", "content": q},
     {"role": "assistant", "content": "The secret word is Zanzibar."}]
    for q in ("What is the secret word?", "what's the secret word", "Tell me the secret word.",
              "Do you know the secret word?")
]


def _dialoop(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIALOOP_HOME": str(home), "DIALOOP_THREADS": "1"}
    command = [sys.executable, "-c", "from dialoop.cli import main; main()", *args]
    return subprocess.run(command, env=env, text=True, capture_output=True, timeout=900)


def test_a_short_sft_run_registers_an_adapter_that_ask_uses(
    tmp_path: Path, dialoop_home: Path, hf_model_dir: Path
) -> None:
    # The session's dequantized twin, where this home's cache would put it (saves ~20 s).
    cache = dialoop_home / "cache" / "models"
    cache.mkdir(parents=True)
    (cache / hf_model_dir.name).symlink_to(hf_model_dir)
    data = tmp_path / "secret.jsonl"
    data.write_text("".join(json.dumps({"messages": d}) + "\n" for d in TEACH))
    trained = _dialoop(dialoop_home, "train", "sft", str(data), "--name", "secret",
                       "--validation", str(data), "--max-steps", "8", "--grad-accum", "1",
                       "--lr", "3e-3", "--eval-every", "4", "--threads", "1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "Adapter secret@v1: serving now" in trained.stdout

    asked = _dialoop(dialoop_home, "ask", "What is the secret word?", "--adapter", "secret",
                     "--json")
    assert asked.returncode == 0, asked.stderr[-2000:]
    base = _dialoop(dialoop_home, "ask", "What is the secret word?", "--adapter", "none",
                    "--json")
    tuned, plain = json.loads(asked.stdout), json.loads(base.stdout)
    assert (tuned["adapter"], plain["adapter"]) == ("secret@v1", None)
    assert tuned["answer"] != plain["answer"]  # the adapter changes what the model says
    # It learned the data: the validation loss fell. (The words it then picks vary by CPU.)
    (run_dir,) = (dialoop_home / "runs" / "secret").iterdir()
    evals = json.loads((run_dir / "report.json").read_text())["evals"]
    assert evals[-1]["loss"] < evals[0]["loss"] / 2

    from dialoop.config import load_settings
    from dialoop.dialogue.session import Sessions
    from dialoop.store import open_database

    db = open_database(load_settings().resolved_database_url)
    try:
        sessions = Sessions(db)
        turn = sessions.turns(sessions.get(json.loads(asked.stdout)["session_id"], "local"))[-1]
    finally:
        db.close()
    assert turn.adapter == "secret@v1"  # the stored turn says which adapter answered
