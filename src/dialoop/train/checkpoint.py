"""Training checkpoints: everything needed to continue a run as if it never stopped.

A checkpoint is a folder ``checkpoints/step-000040/`` holding the trainable
weights (safetensors), the optimizer's and the scheduler's state, the random
number generator's state at that step, and the loop's own counters (JSON). It is
written under a temporary name and renamed when complete, so a run killed while
saving leaves the previous checkpoint intact; the oldest are pruned.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["Checkpoint", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

_PREFIX = "step-"


@dataclass
class Checkpoint:
    path: Path
    weights: dict[str, torch.Tensor]  # trainable parameters by name
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: torch.Tensor  # torch.get_rng_state() at the step
    state: dict[str, Any]  # the loop's counters, JSON-able

    @property
    def step(self) -> int:
        return int(self.state["step"])


def save_checkpoint(run_dir: Path, ckpt: Checkpoint, *, keep: int = 2) -> Path:
    """Write ``ckpt`` as ``run_dir/checkpoints/step-N``; keep only the newest ``keep``."""
    from safetensors.torch import save_file

    root = run_dir / "checkpoints"
    final = root / f"{_PREFIX}{ckpt.step:06d}"
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file({k: v.detach().contiguous() for k, v in ckpt.weights.items()},
              str(partial / "weights.safetensors"))
    torch.save({"optimizer": ckpt.optimizer, "scheduler": ckpt.scheduler, "rng": ckpt.rng},
               partial / "optimizer.pt")
    (partial / "state.json").write_text(json.dumps(ckpt.state, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for old in _checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = _checkpoints(run_dir / "checkpoints")
    return found[-1] if found else None


def load_checkpoint(path: Path) -> Checkpoint:
    from safetensors.torch import load_file

    extra = torch.load(path / "optimizer.pt", weights_only=True)
    return Checkpoint(
        path=path,
        weights=load_file(str(path / "weights.safetensors")),
        optimizer=extra["optimizer"],
        scheduler=extra["scheduler"],
        rng=extra["rng"],
        state=json.loads((path / "state.json").read_text()),
    )


def _checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir()
            if p.name.startswith(_PREFIX) and p.name[len(_PREFIX):].isdigit()]
    return sorted(done, key=lambda p: int(p.name[len(_PREFIX):]))
