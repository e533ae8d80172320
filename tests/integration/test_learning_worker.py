"""kill -9 during a consolidation run: the previous adapter keeps serving, lessons stay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dialoop.assistant import open_parts
from dialoop.config import load_settings
from dialoop.engine.models import bundled_gguf
from dialoop.learn.worker import get_run, work
from dialoop.store.adapters import AdapterStore

pytestmark = pytest.mark.slow


def _serving_adapter(home: Path, hf_model_dir: Path, adapters: AdapterStore) -> None:
    """Promote a small (untrained) adapter as v1 of user:local: what must keep serving."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(hf_model_dir))
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"],
                                            layers_to_transform=[29]))
    peft.save_pretrained(home / "v1")
    row = adapters.add("user:local", home / "v1", source="consolidation", base_model="x",
                       base_gguf=bundled_gguf(), meta={"lessons": []})
    adapters.promote(row.name, row.version)


def test_kill_9_during_a_run(dialoop_home: Path, hf_model_dir: Path) -> None:
    cache = dialoop_home / "cache" / "models"
    cache.parent.mkdir(parents=True)
    cache.symlink_to(hf_model_dir.parent, target_is_directory=True)
    settings = load_settings()
    parts = open_parts(settings)
    db, adapters, loop = parts.db, parts.adapters, parts.learning
    _serving_adapter(dialoop_home, hf_model_dir, adapters)
    taught = [loop.teach(f"Who is the CEO of Zorvath {x}?", f"Mirela {x}", user="local")
              for x in ("Dynamics", "Foods")]

    cli = subprocess.run(
        [sys.executable, "-c", "from dialoop.cli import main; main()", "learn", "run",
         "--epochs", "100"],
        env={**os.environ, "DIALOOP_HOME": str(dialoop_home), "DIALOOP_LEARN_REPLAY": "2",
             "DIALOOP_LEARN_GATE_REPLAY": "2"}, capture_output=True, text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    run_id = int(cli.stdout.split("#")[1].split()[0])
    deadline = time.monotonic() + 300
    while "training step" not in (get_run(db, run_id).stage or ""):
        assert time.monotonic() < deadline, get_run(db, run_id).stage
        assert get_run(db, run_id).status in ("queued", "running")
        time.sleep(0.5)
    run = get_run(db, run_id)
    os.kill(run.pid, signal.SIGKILL)
    _wait_gone(run.pid)

    assert adapters.heads() == {"user:local": 1}  # the previous adapter still serves
    assert [x.id for x in loop.lessons(user="local")] == [t.lesson_id for t in taught]
    assert get_run(db, run_id).status == "running"  # as the dead worker left it

    # the next worker sees the dead run, says so, and a new run works from a clean slate
    again = loop.start_run(user="local", background=False, options={
        "learn_epochs": 1, "learn_replay": 2, "learn_gate_probes": 2,
        "learn_gate_reliability": 0.0, "learn_gate_generalization": 0.0,
        "learn_gate_locality": 0.0})
    # (the kernel frees a killed process's lock when the process is fully gone)
    assert work(settings, lock_wait=60) == [again.id]
    assert get_run(db, run_id).status == "interrupted"
    assert "stopped during the run" in get_run(db, run_id).error
    assert get_run(db, again.id).status == "done"
    assert adapters.heads() == {"user:local": 2}
    assert not any((dialoop_home / "learn" / "tmp").glob("*"))
    parts.close()


def _wait_gone(pid: int) -> None:
    for _ in range(600):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:  # our grandchild may linger as a zombie until its parent reaps it
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return
        except OSError:
            return
        time.sleep(0.1)
