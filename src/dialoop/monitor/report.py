"""Per-topic trends from a monitor's series: a summary table and a chart (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dialoop.monitor.config import SENTIMENTS

__all__ = ["plot_series", "summarize"]

_COLOURS = {"negative": "#c0392b", "neutral": "#95a5a6", "positive": "#27ae60"}


def summarize(series: dict[str, list[dict[str, Any]]], alerts: list[dict[str, Any]],
              *, recent: int = 6) -> list[dict[str, Any]]:
    """One row per topic: totals, shares, and the negative share of the last ``recent``
    buckets against the ``recent`` before them (the trend)."""
    rows = []
    for topic, points in series.items():
        total = {s: sum(p[s] for p in points) for s in SENTIMENTS}
        n = sum(total.values())
        k = max(1, min(recent, len(points) // 2))
        now, before = _share(points[-k:]), _share(points[-2 * k:-k]) if len(points) > k else None
        rows.append({
            "topic": topic, "items": n, "buckets": len(points),
            **{f"{s}_share": round(total[s] / n, 3) if n else 0.0 for s in SENTIMENTS},
            "recent_negative_share": now, "previous_negative_share": before,
            "trend": (None if now is None or before is None else round(now - before, 3)),
            "alerts": sum(a["topic"] == topic for a in alerts),
            "first": points[0]["bucket"] if points else None,
            "last": points[-1]["bucket"] if points else None,
        })
    return rows


def plot_series(series: dict[str, list[dict[str, Any]]], alerts: list[dict[str, Any]],
                path: Path, *, title: str = "Sentiment per topic") -> Path:
    """One panel per topic: items per bucket by sentiment, alerts marked; saved as ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    topics = list(series) or ["(no items)"]
    fig, axes = plt.subplots(len(topics), 1, figsize=(10, 2.6 * len(topics) + 0.6),
                             sharex=True, squeeze=False)
    for ax, topic in zip(axes[:, 0], topics, strict=True):
        points = series.get(topic, [])
        x = [p["bucket"] for p in points]
        for s in SENTIMENTS:
            ax.plot(x, [p[s] for p in points], label=s, color=_COLOURS[s], linewidth=1.4)
        for a in (a for a in alerts if a["topic"] == topic):
            ax.axvline(a["bucket"], color=_COLOURS["negative"], alpha=0.25, linewidth=3)
        ax.set_title(topic, loc="left", fontsize=10)
        ax.set_ylabel("items")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8, ncols=3)
    fig.suptitle(f"{title} (shaded: alerts)")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _share(points: list[dict[str, Any]]) -> float | None:
    total = sum(p["total"] for p in points)
    return round(sum(p["negative"] for p in points) / total, 3) if total else None
