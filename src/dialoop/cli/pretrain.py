"""``dialoop train pretrain``: pre-train a small Transformer from raw text (see
dialoop/transformer/pretrain.py for the recipe)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dialoop.cli import settings_from
from dialoop.errors import InvalidInputError

__all__ = ["classifier", "pretrain"]


@click.command("pretrain")
@click.option("--arch", type=click.Choice(["encoder", "decoder", "encdec"]), required=True,
              help="encoder: BERT-style MLM + NSP; decoder: GPT-style causal LM; "
                   "encdec: sequence to sequence, trained by denoising (or on --pairs).")
@click.option("--data", "data", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="UTF-8 text, documents separated by blank lines (repeatable; "
                   "default: the bundled corpus).")
@click.option("--pairs", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="--arch encdec: train source -> target on these pairs (JSONL with "
                   "\"source\" and \"target\", or TSV source<TAB>target) instead of "
                   "denoising the corpus.")
@click.option("--steps", type=click.IntRange(1), help="Optimizer steps in all (default 200).")
@click.option("--minutes", type=click.FloatRange(0, min_open=True),
              help="Stop after this much training time.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder (default: $DIALOOP_HOME/runs/pretrain-ARCH).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint, with its own data "
                   "and settings (--steps counts from the run's start).")
@click.option("--gguf", is_flag=True,
              help="Also write the decoder as OUT/decoder.gguf for llama.cpp (`dialoop chat "
                   "--model OUT/decoder.gguf`). With --resume on a finished run: export only.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def pretrain(ctx: click.Context, arch: str, data: tuple[Path, ...], pairs: Path | None,
             steps: int | None, minutes: float | None, out: Path | None, resume: bool,
             gguf: bool, as_json: bool) -> None:
    """Pre-train a Transformer on raw text (or, for encdec, on --pairs): a tokenizer,
    packing, AdamW with warm-up and cosine decay, checkpoints, TensorBoard, a report; the
    decoder is also exported as a transformers folder (OUT/hf) and, with --gguf, a GGUF
    file."""
    from dialoop.transformer.pretrain import PretrainConfig
    from dialoop.transformer.pretrain import pretrain as run

    settings = settings_from(ctx)
    out = out or settings.home / "runs" / f"pretrain-{arch}"
    try:
        config = PretrainConfig(arch=arch, out=out, data=data, pairs=pairs,  # type: ignore[arg-type]
                                steps=steps, minutes=minutes, resume=resume, gguf=gguf,
                                threads=settings.threads)
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
        f"{report['best_validation']['step']}: those weights are kept (best.safetensors) and "
        "exported",
    ]
    if "nsp_accuracy" in report:
        lines.append(f"  next-sentence accuracy (validation) {report['nsp_accuracy']:.3f}")
    lines.append(f"  run folder {report['out']} (checkpoints, tensorboard/, report.json)")
    if "hf_export" in report:
        lines.append(f"  transformers folder {report['hf_export']}: "
                     f"AutoModelForCausalLM.from_pretrained({report['hf_export']!r})")
    if "generation" in report:
        g = report["generation"]
        lines.append(f"  greedy generation, validation pairs ({g['pairs']}): exact match "
                     f"{g['exact_match']:.3f}; Seq2Seq.load({report['out']!r}).generate(text)")
        lines += [f"    {e['source']!r} -> {e['output']!r} (target {e['target']!r})"
                  for e in g["examples"]]
    if "gguf_export" in report:
        lines.append(f"  GGUF file {report['gguf_export']}: dialoop chat --model "
                     f"{report['gguf_export']}")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@click.command("classifier")
@click.option("--encoder", required=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A `dialoop train pretrain --arch encoder` run folder.")
@click.option("--data", required=True, metavar="FILE",
              type=click.Path(exists=True, path_type=Path),
              help="Labelled texts: CSV with a header (text,label; label may be named "
                   "intent, category or sentiment), JSONL with the same keys, or a folder "
                   "with train.csv and test.csv such as BANKING77's.")
@click.option("--validation", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labelled texts to validate on (default: test.csv beside train.csv, "
                   "else 10 %% of each label held out).")
@click.option("--epochs", type=click.IntRange(1), default=5, show_default=True)
@click.option("--pooling", type=click.Choice(["mean", "cls"]), default="mean",
              show_default=True, help="The encoder output the head reads: the mean of the "
                                      "tokens' states, or the [CLS] state.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to save the classifier in (default: $DIALOOP_HOME/classifiers/"
                   "DATA-NAME).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def classifier(ctx: click.Context, encoder: Path, data: Path, validation: Path | None,
               epochs: int, pooling: str, out: Path | None, as_json: bool) -> None:
    """Fine-tune a pre-trained encoder as an intent or sentiment classifier; prints
    validation accuracy and macro-F1 per epoch and saves the best epoch, which
    EncoderClassifier.load(OUT).predict(texts) serves."""
    from dialoop.transformer.finetune import ClassifierConfig, train_classifier

    settings = settings_from(ctx)
    out = out or settings.home / "classifiers" / (data.stem if data.is_file() else data.name)
    try:
        config = ClassifierConfig(encoder=encoder, data=data, out=out, validation=validation,
                                  epochs=epochs, pooling=pooling,  # type: ignore[arg-type]
                                  threads=settings.threads)
        report = train_classifier(config, progress=not as_json)
    except InvalidInputError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    click.echo(f"{report['labels']} labels, {report['train_examples']} training and "
               f"{report['validation_examples']} validation texts, {report['train_seconds']:.0f} s")
    for e in report["epochs"]:
        click.echo(f"  epoch {e['epoch']}: train loss {e['train_loss']:.3f}   validation "
                   f"accuracy {e['accuracy']:.3f}   macro-F1 {e['macro_f1']:.3f}")
    best = report["best"]
    click.echo(f"  best: epoch {best['epoch']} (accuracy {best['accuracy']:.3f}, macro-F1 "
               f"{best['macro_f1']:.3f}), saved in {report['out']}: "
               f"EncoderClassifier.load({report['out']!r}).predict(texts)")
