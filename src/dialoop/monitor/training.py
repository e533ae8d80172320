"""Retraining the sentiment head from analysts' corrections, behind a gate.

The corrections are split by item id: every ``HOLD_OUT``-th one is held out, the rest
train a candidate together with the built-in seed sentences. The candidate replaces
the current head only if, on the held-out corrections, it is right at least as often,
and on the check sentences (:data:`~dialoop.monitor.seed.CHECK`, never trained on) it
loses at most ``CHECK_TOLERANCE`` of accuracy: learning the analysts' kind of text
must not unlearn plain sentiment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dialoop.engine.embedding import Embedder
from dialoop.monitor.classify import SentimentHead, fit_head
from dialoop.monitor.seed import CHECK, SEED

__all__ = ["CHECK_TOLERANCE", "HOLD_OUT", "MIN_CORRECTIONS", "GateReport", "retrain"]

HOLD_OUT = 4  # one correction in four is held out
MIN_CORRECTIONS = 4
CHECK_TOLERANCE = 1 / len(CHECK) + 1e-9  # one check sentence
CORRECTION_WEIGHT = 2.0  # an analyst's label counts twice a seed sentence's


@dataclass(frozen=True)
class GateReport:
    accepted: bool
    reason: str
    trained_on: int  # corrections in the candidate's training set
    held_out: int
    held_out_accuracy: tuple[float, float]  # (current, candidate)
    check_accuracy: tuple[float, float]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "reason": self.reason, "trained_on": self.trained_on,
                "held_out": self.held_out,
                "held_out_accuracy": {"current": round(self.held_out_accuracy[0], 4),
                                      "candidate": round(self.held_out_accuracy[1], 4)},
                "check_accuracy": {"current": round(self.check_accuracy[0], 4),
                                   "candidate": round(self.check_accuracy[1], 4)}} | self.extra


class SeedVectors:
    """The seed and check sentences embedded once per embedder (they never change)."""

    def __init__(self, embedder: Embedder) -> None:
        self.seed = embedder.embed([t for t, _ in SEED])  # (S, D)
        self.seed_labels = [s for _, s in SEED]
        self.check = embedder.embed([t for t, _ in CHECK])  # (C, D)
        self.check_labels = [s for _, s in CHECK]

    def builtin_head(self) -> SentimentHead:
        return fit_head(self.seed, self.seed_labels, version=0)


def retrain(current: SentimentHead, corrections: Sequence[tuple[int, str, str]],
            embedder: Embedder, seeds: SeedVectors, *,
            version: int) -> tuple[SentimentHead, GateReport]:
    """A candidate head from ``corrections`` (item id, text, sentiment) and its gate report.

    The caller keeps the candidate only when the report says ``accepted``.
    """
    held = [c for c in corrections if c[0] % HOLD_OUT == 0]
    train = [c for c in corrections if c[0] % HOLD_OUT != 0]
    vectors = embedder.embed([t for _, t, _ in corrections])  # (K, D)
    by_id = {c[0]: vectors[i] for i, c in enumerate(corrections)}
    train_x = np.vstack([seeds.seed, *[by_id[c[0]][None] for c in train]])
    train_y = seeds.seed_labels + [s for _, _, s in train]
    weights = [1.0] * len(seeds.seed_labels) + [CORRECTION_WEIGHT] * len(train)
    candidate = fit_head(train_x, train_y, version=version, weights=weights)
    held_x = (np.vstack([by_id[c[0]][None] for c in held]) if held
              else np.zeros((0, seeds.seed.shape[1]), np.float32))
    held_y = [s for _, _, s in held]
    held_acc = (current.accuracy(held_x, held_y), candidate.accuracy(held_x, held_y))
    check_acc = (current.accuracy(seeds.check, seeds.check_labels),
                 candidate.accuracy(seeds.check, seeds.check_labels))
    if held_acc[1] < held_acc[0]:
        accepted, reason = False, (f"worse on the held-out corrections ({held_acc[1]:.3f} < "
                                   f"{held_acc[0]:.3f})")
    elif check_acc[1] < check_acc[0] - CHECK_TOLERANCE:
        accepted, reason = False, (f"worse on the check sentences ({check_acc[1]:.3f} < "
                                   f"{check_acc[0]:.3f})")
    else:
        accepted, reason = True, "not worse on the held-out corrections nor the check sentences"
    return candidate, GateReport(accepted, reason, len(train), len(held), held_acc, check_acc)
