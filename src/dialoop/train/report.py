"""The report of a training run: ``report.json``, ``report.md`` and ``loss_curve.png``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from dialoop.train.peft_methods import describe

__all__ = ["plot_loss_curve", "write_report"]

log = logging.getLogger(__name__)


def write_report(report: dict[str, Any], run_dir: Path) -> None:
    """Write the three files; report.json last, as it marks the run finished."""
    curve = run_dir / "loss_curve.png"
    plot_loss_curve(report, curve)
    (run_dir / "report.md").write_text(_markdown(report, curve.name))
    partial = run_dir / "report.json.partial"
    partial.write_text(json.dumps(report, indent=1))
    partial.rename(run_dir / "report.json")


def plot_loss_curve(report: dict[str, Any], out: Path) -> None:
    """Training loss per step and validation loss per evaluation, on one chart."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    history = report.get("history", [])
    if history:
        ax.plot([h["step"] for h in history], [h["loss"] for h in history],
                color="#9ab", linewidth=1, label="training loss")
    evals = report.get("evals", [])
    if evals:
        ax.plot([e["step"] for e in evals], [e["loss"] for e in evals],
                marker="o", color="#c33", label="validation loss")
    best = report.get("best_step")
    if best is not None and evals:
        ax.axvline(best, color="#c33", linestyle=":", linewidth=1,
                   label=f"kept (step {report.get('kept_step', best)})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per assistant token (nats)")
    ax.set_title(f"{report.get('name', '')}: {report.get('method', '')} on "
                 f"{report.get('model_name', report.get('model', ''))}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def _markdown(r: dict[str, Any], curve: str) -> str:
    d = r["data"]
    c = r["config"]
    evals = r.get("evals", [])
    first, best = (evals[0], min(evals, key=lambda e: e["loss"])) if evals else (None, None)
    lines = [
        f"# Training run `{r['name']}`",
        "",
        f"- model: {r.get('model_name', r['model'])} ({describe(c)})",
        f"- data: {d['train_dialogues']} training dialogues ({d['train_tokens']} tokens, "
        f"{d['train_targets']} assistant tokens, {d['train_rows']} packed rows, "
        f"{d['packing_fill']:.0%} full), {d['validation_dialogues']} validation dialogues",
        f"- steps: {r['steps']} of {r['total_steps']} ({r['epochs_done']} epochs)"
        + (", stopped early" if r["stopped_early"] else "")
        + (f", resumed from step {', '.join(map(str, r['resumed_from']))}"
           if r.get("resumed_from") else ""),
        f"- optimizer: AdamW lr={c['learning_rate']} weight decay={c['weight_decay']}, "
        f"warmup {c['warmup_ratio']:.0%} then cosine, {c['grad_accum']} rows per step, "
        f"clip {c['max_grad_norm']}, seed {c['seed']}",
        f"- time: {r['wall_seconds']} s wall, {r['train_seconds']} s training at "
        f"{r['train_tokens_per_second']} tokens/s ({r['threads']} threads, {r['precision']})",
    ]
    if "trainable_parameters" in r:  # after the model line: what the method trains
        extra = [f"- trainable parameters: {r['trainable_parameters']:,}; "
                 f"serving: {r['serving']}"]
        if "search" in r:
            s = r["search"]
            extra.append(f"- search: {len(s['trials'])} trials of {s['trial_steps']} steps "
                         f"(search.json); best {s['best']}")
        lines[3:3] = extra
    if r.get("adapter"):
        state = "serving" if r.get("promoted") else "registered, not promoted"
        lines.append(f"- adapter: `{r['adapter']}` ({state})")
    if first is not None and best is not None:
        lines += [
            "",
            "| validation | before (step 0) | best (step {}) |".format(best["step"]),
            "|---|---|---|",
            f"| loss | {first['loss']:.4f} | {best['loss']:.4f} |",
            f"| perplexity | {first['perplexity']:.2f} | {best['perplexity']:.2f} |",
            f"| token accuracy | {first['token_accuracy']:.3f} | {best['token_accuracy']:.3f} |",
        ]
    lines += ["", f"![loss curve]({curve})", ""]
    return "\n".join(lines)
