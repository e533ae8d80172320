"""Alert rules over a topic's series: threshold, rate of change, z-score over a window.

Pure functions of the counts; :class:`~dialoop.monitor.monitor.Monitor` records what
fires. Rules are described in :class:`~dialoop.monitor.config.AlertRule`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from dialoop.monitor.config import AlertRule

__all__ = ["Firing", "evaluate"]


@dataclass(frozen=True)
class Firing:
    rule: AlertRule
    index: int  # the bucket's position in the series
    value: float  # the measured value: a count or share, a ratio, or a z-score
    message: str


def evaluate(rule: AlertRule, negatives: Sequence[int], totals: Sequence[int],
             index: int) -> Firing | None:
    """Whether ``rule`` fires on bucket ``index`` of a topic's series.

    ``negatives[i]`` and ``totals[i]`` are the negative and all items of bucket ``i``;
    buckets without items are zeros, and the series starts at the topic's first bucket.
    """
    if totals[index] < rule.min_items:
        return None
    values = _metric(rule, negatives, totals)
    v = values[index]
    what = "negative items" if rule.metric == "negative" else "share of negative items"
    if rule.kind == "threshold":
        if v >= rule.above:
            return Firing(rule, index, v, f"{what} {_fmt(v)} ≥ {_fmt(rule.above)}")
        return None
    if rule.kind == "rate":
        if index == 0:
            return None
        before = values[index - 1]
        ratio = v / max(before, rule.floor)
        if ratio >= rule.above:
            return Firing(rule, index, ratio, f"{what} {_fmt(before)} → {_fmt(v)} "
                                              f"(×{ratio:.1f}, rule ×{_fmt(rule.above)})")
        return None
    history = values[index - rule.window:index] if index >= rule.window else []
    if not history:
        return None  # not yet a full window of history
    mean = statistics.fmean(history)
    z = (v - mean) / max(statistics.pstdev(history), rule.floor)
    if z >= rule.above:
        return Firing(rule, index, z, f"{what} {_fmt(v)} against a mean of {mean:.2f} over "
                                      f"{rule.window} buckets (z = {z:.1f} ≥ {_fmt(rule.above)})")
    return None


def _metric(rule: AlertRule, negatives: Sequence[int], totals: Sequence[int]) -> list[float]:
    if rule.metric == "negative":
        return [float(n) for n in negatives]
    return [n / t if t else 0.0 for n, t in zip(negatives, totals, strict=True)]


def _fmt(x: float) -> str:
    return f"{x:g}" if float(x).is_integer() else f"{x:.2f}"
