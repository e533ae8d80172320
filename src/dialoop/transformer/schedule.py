"""The learning rate over a run: linear warm-up, then cosine decay.

    lr(step) = lr_max · step / warmup                                  for step < warmup
    lr(p)    = lr_min + ½ (lr_max − lr_min) (1 + cos(π p))             after it

where p ∈ [0, 1] is the fraction of the run after warm-up that is done (of the steps,
or of the time budget when the run is limited by minutes). Warm-up lets AdamW's
second-moment estimates settle before the steps get large; the cosine spends most of
the run at a high rate and ends gently at lr_min.
"""

from __future__ import annotations

import math

__all__ = ["learning_rate"]


def learning_rate(step: int, progress: float, *, lr_max: float, lr_min: float,
                  warmup: int) -> float:
    """The rate for ``step`` (counted from 0) when ``progress`` of the post-warm-up run is done."""
    if step < warmup:
        return lr_max * (step + 1) / warmup
    p = min(max(progress, 0.0), 1.0)
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * p))
