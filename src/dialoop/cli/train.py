"""``dialoop train sft`` (fine-tune on dialogues) and ``dialoop eval model`` (measure it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dialoop.cli import eval_group, settings_from
from dialoop.config import Settings
from dialoop.errors import InvalidInputError

__all__ = ["eval_model", "train"]

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def train() -> None:
    """Fine-tune the model on your dialogues."""


@train.command("sft")
@click.argument("train_file", type=_FILE)
@click.option("--name", required=True, help="Adapter line to register the result as.")
@click.option("--validation", "validation_file", type=_FILE,
              help="Validation dialogues (default: hold out --validation-fraction).")
@click.option("--validation-fraction", type=float, default=0.1, show_default=True)
@click.option("--model", default="default", show_default=True, help="Base model spec.")
@click.option("--full", "full", is_flag=True, help="Train every weight instead of LoRA.")
@click.option("--lora-r", type=int, default=16, show_default=True)
@click.option("--lora-alpha", type=int, default=32, show_default=True)
@click.option("--lora-dropout", type=float, default=0.05, show_default=True)
@click.option("--target-modules", default=",".join(
    ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")),
    show_default=True, help="Comma-separated module names to adapt.")
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--lr", "learning_rate", type=float, default=2e-4, show_default=True)
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--warmup-ratio", type=float, default=0.05, show_default=True)
@click.option("--grad-accum", type=int, default=4, show_default=True,
              help="Packed rows per optimizer step.")
@click.option("--pack-length", type=int, default=1024, show_default=True,
              help="Tokens per packed row.")
@click.option("--max-grad-norm", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--eval-every", type=int, default=20, show_default=True)
@click.option("--save-every", type=int, default=20, show_default=True)
@click.option("--patience", type=int, default=3, show_default=True,
              help="Evaluations without a better validation loss before stopping.")
@click.option("--min-delta", type=float, default=0.0, show_default=True)
@click.option("--train-on", type=click.Choice(["assistant", "last"]), default="assistant",
              show_default=True, help="Loss on every assistant turn, or the last only.")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto",
              show_default=True)
@click.option("--threads", type=int,
              help="CPU threads (default: the threads setting, else all cores).")
@click.option("--no-promote", is_flag=True, help="Register the adapter without serving it.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run of --name.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def sft(ctx: click.Context, train_file: Path, name: str, validation_file: Path | None,
        validation_fraction: float, full: bool, target_modules: str, no_promote: bool,
        as_json: bool, **options: object) -> None:
    """Fine-tune on TRAIN_FILE (JSONL dialogues, OpenAI or ShareGPT format)."""
    from dialoop.train.sft import SFTConfig, train_sft

    settings = settings_from(ctx)
    options["threads"] = options["threads"] or settings.threads
    config = SFTConfig(
        name=name, train_file=train_file, validation_file=validation_file,
        validation_fraction=0.1 if validation_file else validation_fraction,
        method="full" if full else "lora",
        target_modules=tuple(m.strip() for m in target_modules.split(",") if m.strip()),
        promote=not no_promote, **options,  # type: ignore[arg-type]
    )
    try:
        result = train_sft(config, settings, progress=True)
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted. Run the same command with --resume to continue "
                   f"{name} from its last checkpoint.", err=True)
        sys.exit(130)
    report = result.report
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    evals = report["evals"]
    if evals:
        best = next(e for e in evals if e["step"] == report["kept_step"])
        click.echo(f"Validation loss {evals[0]['loss']:.3f} -> {best['loss']:.3f} "
                   f"(kept step {report['kept_step']} of {report['steps']}"
                   f"{', stopped early' if report['stopped_early'] else ''}).")
        if report["kept_step"] == 0:
            click.echo("No step beat the base model on validation; try a lower --lr or "
                       "more data.")
    click.echo(f"{report['train_tokens_per_second']:.0f} tokens/s, {report['wall_seconds']:.0f} s.")
    if result.adapter is not None:
        state = "serving now" if report["promoted"] else "not serving (--no-promote)"
        click.echo(f"Adapter {result.adapter.key}: {state}. "
                   f"Try: dialoop chat --adapter {name}")
    else:
        click.echo(f"Model saved in {result.output}: dialoop chat --engine torch "
                   f"--model {result.output}")
    click.echo(f"Report: {result.run_dir / 'report.md'}")


@eval_group.command("model")
@click.option("--data", "data_file", type=_FILE, required=True,
              help="Held-out dialogues (JSONL), e.g. a test split.")
@click.option("--adapter", metavar="NAME[@vN]|DIR",
              help="Adapter to compare with the base: a registered line or a PEFT folder.")
@click.option("--model", help="Base model spec (default: the adapter's base, or 'default').")
@click.option("--engine", "engine_kind", type=click.Choice(["llamacpp", "torch"]),
              default="llamacpp", show_default=True, help="Engine that generates the answers.")
@click.option("--turns", type=click.Choice(["all", "last"]), default="all", show_default=True,
              help="Answer every assistant turn, or only each dialogue's last.")
@click.option("--max-new-tokens", type=int, default=128, show_default=True)
@click.option("--limit", type=int, help="Evaluate only the first N dialogues.")
@click.option("--no-generate", is_flag=True, help="Token metrics only (no BLEU/ROUGE/keys).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write metrics and every answer as JSON here.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def eval_model(ctx: click.Context, data_file: Path, adapter: str | None, model: str | None,
               engine_kind: str, turns: str, max_new_tokens: int, limit: int | None,
               no_generate: bool, out: Path | None, as_json: bool) -> None:
    """Perplexity, token accuracy, BLEU, ROUGE-L, exact match and key accuracy: base vs adapter."""
    from dialoop.eval.model import compare
    from dialoop.train.data import load_dialogues

    settings = settings_from(ctx)
    dialogues = load_dialogues(data_file)[:limit]
    if max_new_tokens < 1:
        raise InvalidInputError("--max-new-tokens must be at least 1.")
    resolved, base = _resolve_adapter(settings, adapter)
    comparison = compare(
        settings, dialogues, model=model or base or "default", adapter=resolved,
        engine_kind=engine_kind, turns=turns, max_new_tokens=max_new_tokens,  # type: ignore[arg-type]
        generate=not no_generate,
        progress=True,
    )
    if out is not None:
        out.write_text(json.dumps(comparison.to_json(), indent=1, ensure_ascii=False))
    if as_json:
        click.echo(json.dumps({r.label: r.metrics for r in comparison.results}, indent=1))
    else:
        click.echo(f"{len(dialogues)} dialogues from {data_file.name}, answers by {engine_kind}\n")
        click.echo(comparison.table())


def _resolve_adapter(
    settings: Settings, ref: str | None
) -> tuple[tuple[str, Path, Path | None] | None, str | None]:
    """(label, PEFT folder, GGUF file or None) and the adapter's base model spec."""
    if ref is None or ref == "none":
        return None, None
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "adapter_config.json").is_file():
            raise InvalidInputError(f"{path} is not a PEFT adapter folder (no adapter_config).")
        return (path.name, path, None), None
    from dialoop.store import open_database
    from dialoop.store.adapters import GGUF_FILE, AdapterStore

    db = open_database(settings.resolved_database_url)
    try:
        row = AdapterStore(db, settings.home).resolve(ref)
    finally:
        db.close()
    folder = settings.home / row.path
    gguf = folder / GGUF_FILE
    return (row.key, folder, gguf if gguf.is_file() else None), row.base_model
