"""``dialoop train pretrain``: pre-train a small Transformer from raw text (see
dialoop/transformer/pretrain.py for the recipe)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dialoop.cli import settings_from
from dialoop.errors import InvalidInputError

__all__ = ["pretrain"]


@click.command("pretrain")
@click.option("--arch", type=click.Choice(["encoder", "decoder", "encdec"]), required=True,
              help="encoder: BERT-style MLM + NSP; decoder: GPT-style causal LM; "
                   "encdec: sequence to sequence, trained by denoising.")
@click.option("--data", "data", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="UTF-8 text, documents separated by blank lines (repeatable; "
                   "default: the bundled corpus).")
@click.option("--steps", type=click.IntRange(1), help="Optimizer steps in all (default 200).")
@click.option("--minutes", type=click.FloatRange(0, min_open=True),
              help="Stop after this much training time.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder (default: $DIALOOP_HOME/runs/pretrain-ARCH).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint, with its own data "
                   "and settings (--steps counts from the run's start).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def pretrain(ctx: click.Context, arch: str, data: tuple[Path, ...], steps: int | None,
             minutes: float | None, out: Path | None, resume: bool, as_json: bool) -> None:
    """Pre-train a Transformer on raw text: a tokenizer, packing, AdamW with warm-up and
    cosine decay, checkpoints, TensorBoard, a report; the decoder is also exported as a
    transformers folder (OUT/hf)."""
    from dialoop.transformer.pretrain import PretrainConfig
    from dialoop.transformer.pretrain import pretrain as run

    settings = settings_from(ctx)
    out = out or settings.home / "runs" / f"pretrain-{arch}"
    try:
        config = PretrainConfig(arch=arch, out=out, data=data, steps=steps,  # type: ignore[arg-type]
                                minutes=minutes, resume=resume, threads=settings.threads)
        report = run(config, progress=not as_json)
    except InvalidInputError as exc:
        raise click.UsageError(str(exc)) from None  # exit status 2, as for a bad option
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted. Add --resume (and --out {out} if you gave it) to the same "
                   "command to continue from the last checkpoint.", err=True)
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    click.echo(_summary(report))


def _summary(report: dict) -> str:
    lines = [
        f"{report['arch']}: {report['parameters'] / 1e6:.2f} M parameters, "
        f"{report['steps']} steps, {report['tokens']} tokens in {report['train_seconds']:.0f} s "
        f"({report['tokens_per_second']:.0f} tokens/s)"
        + (f", resumed from step {report['resumed_from'][-1]}" if report["resumed_from"] else ""),
        f"  train loss {_number(report['train_loss'])}   validation loss "
        f"{report['validation_loss']:.3f}   validation perplexity "
        f"{report['validation_perplexity']:.1f}"
        + (" (MLM)" if report["arch"] == "encoder" else ""),
        f"  best validation perplexity {report['best_validation']['perplexity']:.1f} at step "
        f"{report['best_validation']['step']}",
    ]
    if "nsp_accuracy" in report:
        lines.append(f"  next-sentence accuracy (validation) {report['nsp_accuracy']:.3f}")
    lines.append(f"  run folder {report['out']} (checkpoints, tensorboard/, report.json)")
    if "hf_export" in report:
        lines.append(f"  transformers folder {report['hf_export']}: "
                     f"AutoModelForCausalLM.from_pretrained({report['hf_export']!r})")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
