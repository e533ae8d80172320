"""Charts of the learning loop: gate metrics and satisfaction over adapter versions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_versions"]

_SERIES = ("reliability", "generalization", "locality", "earlier_lessons", "rated_behaviour",
           "style_locality")


def plot_versions(rows: Sequence[dict[str, Any]], out: Path, *, title: str) -> Path:
    """One line per gate metric and one for satisfaction, over versions; rejected ones hollow.

    ``rows`` are :meth:`~dialoop.learn.loop.LearningLoop.history` entries of one line.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    versions = [r["version"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in _SERIES:
        values = [(r["gate"].get("metrics") or {}).get(name) for r in rows]
        if any(v is not None for v in values):
            ax.plot(versions, [v if v is not None else float("nan") for v in values],
                    marker="o", label=name.replace("_", " "))
    sat = [r["satisfaction"] for r in rows]
    if any(v is not None for v in sat):
        ax.plot(versions, [v if v is not None else float("nan") for v in sat], marker="s",
                linestyle="--", color="black", label="satisfaction")
    for r in rows:
        if r["status"] == "rejected":
            ax.axvspan(r["version"] - 0.3, r["version"] + 0.3, color="red", alpha=0.08)
        if r["serving"]:
            ax.axvline(r["version"], color="green", alpha=0.3)
    ax.set(xlabel="adapter version, lessons it holds (red: rejected by the gate, green: "
                  "serving)", ylabel="share", ylim=(-0.02, 1.02), title=title)
    ax.set_xticks(versions, [f"v{r['version']}\n{r.get('lessons', 0)}" for r in rows])
    ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
