"""``dialoop train sft`` (fine-tune on dialogues), ``dialoop train policy`` (learn a dialogue
policy, gate it, serve it) and ``dialoop eval model`` (measure a fine-tune)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dialoop.cli import eval_group, settings_from
from dialoop.cli.pretrain import classifier, pretrain
from dialoop.config import Settings
from dialoop.errors import InvalidInputError

if TYPE_CHECKING:
    from dialoop.train.sft import SFTConfig

__all__ = ["eval_model", "train"]

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_METHODS = ["lora", "adalora", "ia3", "prefix", "prompt", "adapter", "full"]  # peft_methods.METHODS


@click.group()
def train() -> None:
    """Fine-tune the model on your dialogues, or learn a domain's dialogue policy."""


train.add_command(pretrain)
train.add_command(classifier)


@train.command("tracker-gate")
@click.option("--data", "data_path", required=True, metavar="DIR",
              type=click.Path(path_type=Path),
              help="The MultiWOZ 2.1 folder (val.json.zip, ontology21.json, db/).")
@click.option("--dialogues", "count", type=click.IntRange(min=1), default=700,
              show_default=True, metavar="K",
              help="Train on the first K dialogues (report on the rest with `dialoop eval "
                   "multiwoz --split K --gate FILE`).")
@click.option("-o", "--out", "out", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path), help="Where to write the gate.")
def tracker_gate(data_path: Path, count: int, out: Path) -> None:
    """Learn which of the state tracker's proposals to keep, from annotated dialogues.

    Runs the value-matching tracker over the first K MultiWOZ dialogues, labels each value
    it proposes (and each looser guess) by the annotated state, and fits gradient-boosted
    trees on features of the proposal and the turn (dialogue/gate.py). A few seconds.
    """
    from dialoop.eval.multiwoz import load_dialogues, train_multiwoz_gate

    dialogues = load_dialogues(data_path, count)
    with click.progressbar(length=len(dialogues), label="reading proposals",
                           file=sys.stderr) as bar:
        gate = train_multiwoz_gate(data_path, dialogues, progress=bar.update)
    gate.save(out)
    info = gate.info
    click.echo(f"tracker gate → {out}: {info['dialogues']} dialogues, {info['turns']} turns, "
               f"{info['proposals']} proposals ({info['kept_share']:.0%} in the annotated "
               f"state), {info['seconds']:.1f} s; keeps a proposal from p ≥ {gate.threshold}")


@train.command("sft")
@click.argument("train_file", type=_FILE)
@click.option("--name", required=True, help="Adapter line to register the result as.")
@click.option("--validation", "validation_file", type=_FILE,
              help="Validation dialogues (default: hold out --validation-fraction).")
@click.option("--validation-fraction", type=float, default=0.1, show_default=True)
@click.option("--model", default="default", show_default=True, help="Base model spec.")
@click.option("--method", type=click.Choice(_METHODS), default="lora", show_default=True,
              help="What to train: LoRA, AdaLoRA, IA3, prefix or prompt tuning, bottleneck "
                   "adapters, or every weight. LoRA and AdaLoRA serve on llama.cpp and torch, "
                   "IA3 and full on the torch engine only; prefix, prompt and adapter results "
                   "are saved for PEFT/torch code (docs/training.md).")
@click.option("--full", "full", is_flag=True, help="Same as --method full.")
@click.option("--rank", "--lora-r", "lora_r", type=int, default=16, show_default=True,
              help="lora: the rank; adalora: the average rank it prunes to.")
@click.option("--alpha", "--lora-alpha", "lora_alpha", type=int, default=32, show_default=True,
              help="lora, adalora: the scale of the update (alpha / rank).")
@click.option("--lora-dropout", type=float, default=0.05, show_default=True)
@click.option("--target-modules",
              help="lora, adalora, ia3: comma-separated module names to adapt [default: all "
                   "seven projections; ia3: k_proj,v_proj,down_proj].")
@click.option("--virtual-tokens", type=int, default=20, show_default=True,
              help="prefix, prompt: how many virtual tokens to learn.")
@click.option("--bottleneck", type=int, default=64, show_default=True,
              help="adapter: features in the middle of each bottleneck MLP.")
@click.option("--search", "search_trials", type=int, metavar="N",
              help="First run N short trials (Optuna) for the learning rate, weight decay and "
                   "the method's size on the validation loss; then train with the best. "
                   "Needs --validation.")
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
        validation_fraction: float, method: str, full: bool, target_modules: str | None,
        search_trials: int | None, no_promote: bool, as_json: bool, **options: object) -> None:
    """Fine-tune on TRAIN_FILE (JSONL dialogues, OpenAI or ShareGPT format)."""
    from dialoop.train.sft import train_sft

    settings = settings_from(ctx)
    config = _sft_config(ctx, train_file, name, validation_file, validation_fraction, method,
                         full, target_modules, search_trials, no_promote, options,
                         settings.threads)
    try:
        if search_trials:
            from dialoop.train.search import search_and_train

            searched = search_and_train(config, settings, search_trials, progress=True)
            result = searched.result
            if not as_json:
                click.echo(searched.table())
        else:
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
    click.echo(f"{report['method']}: {report['trainable_parameters']:,} trainable parameters; "
               f"{report['train_tokens_per_second']:.0f} tokens/s, "
               f"{report['wall_seconds']:.0f} s.")
    click.echo(f"Serving: {report['serving']}")
    if result.adapter is not None:
        state = "serving now" if report["promoted"] else "not serving (--no-promote)"
        engine = "" if report["method"] in ("lora", "adalora") else " --engine torch"
        click.echo(f"Adapter {result.adapter.key}: {state}. "
                   f"Try: dialoop chat{engine} --adapter {name}")
    else:  # method "full": a whole model, not an adapter
        click.echo(f"Model saved in {result.output}: dialoop chat --engine torch "
                   f"--model {result.output}")
    click.echo(f"Report: {result.run_dir / 'report.md'}")


def _sft_config(ctx: click.Context, train_file: Path, name: str, validation_file: Path | None,
                validation_fraction: float, method: str, full: bool, target_modules: str | None,
                search_trials: int | None, no_promote: bool, options: dict[str, object],
                threads: int | None) -> SFTConfig:
    """The run's options, checked; a bad combination is a usage error (exit 2), before any
    work."""
    from dialoop.train.sft import SFTConfig

    source = ctx.get_parameter_source("method")
    if full and source is not click.core.ParameterSource.DEFAULT and method != "full":
        raise click.UsageError(f"--full and --method {method} contradict each other; "
                               "choose one (--full means --method full).")
    if search_trials is not None:
        if search_trials < 1:
            raise click.UsageError("--search takes the number of trials, at least 1.")
        if validation_file is None:
            raise click.UsageError("--search chooses by the validation loss: give a "
                                   "--validation file of dialogues.")
        if options.get("resume"):
            raise click.UsageError("--search starts new runs; it cannot --resume one.")
    options["threads"] = options["threads"] or threads
    try:
        return SFTConfig(
            name=name, train_file=train_file, validation_file=validation_file,
            validation_fraction=0.1 if validation_file else validation_fraction,
            method="full" if full else method,  # type: ignore[arg-type]
            target_modules=None if target_modules is None else
            tuple(m.strip() for m in target_modules.split(",") if m.strip()),
            promote=not no_promote, **options,  # type: ignore[arg-type]
        )
    except InvalidInputError as exc:
        raise click.UsageError(str(exc)) from None


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


# -- dialoop train policy --------------------------------------------------------------------


@train.command("policy")
@click.option("--domain", "domain_path", required=True, metavar="PATH",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The domain file.")
@click.option("--method", type=click.Choice(["supervised", "rl", "irl", "hierarchical"]),
              default="supervised", show_default=True, help="How the policy learns.")
@click.option("--dialogues", type=click.IntRange(0), metavar="N",
              help="Simulated dialogues to learn from (supervised: the rules' decisions, "
                   "default 500; rl: stop after N, default: --steps).")
@click.option("--steps", type=click.IntRange(1), metavar="N",
              help="Decisions to train on (rl: default 20000).")
@click.option("--noise", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Simulated users' noise while training and in the gate.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--gate-dialogues", type=click.IntRange(1), default=300, show_default=True,
              help="Simulated dialogues the gate compares on (the same users for both).")
@click.option("--margin", type=click.FloatRange(0, 1), default=0.02, show_default=True,
              help="How much lower the candidate's simulated task success may be.")
@click.option("--tests", "tests_paths", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Scripted test dialogues for the gate (repeatable; default: holdout.yaml "
                   "next to the domain file, else tests.yaml, if there).")
@click.option("--no-gate", is_flag=True,
              help="Store the version as a candidate without judging or serving it.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def policy(ctx: click.Context, domain_path: Path, method: str, dialogues: int | None,
           steps: int | None, noise: float, seed: int, gate_dialogues: int, margin: float,
           tests_paths: tuple[Path, ...], no_gate: bool, as_json: bool) -> None:
    """Learn a dialogue policy for a domain, store it as a version and gate it.

    The gate compares the new version with the one serving (or the rules) on simulated
    users and on the domain's test dialogues; it serves only if it is not worse. Then
    `dialoop chat --domain D --policy serving` (or vN) uses it.
    """
    import datetime as dt

    from dialoop.dialogue.domain import load_domain
    from dialoop.engine.embedding import default_embedder
    from dialoop.policy.gate import GateSettings, gate
    from dialoop.policy.learners import train as learn
    from dialoop.policy.registry import PolicyRegistry

    settings = settings_from(ctx)
    domain = load_domain(domain_path)
    _quiet_manager()
    gate_settings = GateSettings(dialogues=gate_dialogues, noise=noise, margin=margin)
    embedder = default_embedder()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    log_dir = settings.home / "runs" / f"policy-{domain.name}-{method}-{stamp}"
    options: dict[str, object] = {"seed": seed, "noise": noise, "progress": True,
                                  "log_dir": log_dir, "home": settings.home,
                                  "embedder": embedder}
    if dialogues is not None:
        options["dialogues"] = dialogues
    if steps is not None:
        options["steps"] = steps
    click.echo(f"Training a {method} policy for {domain.name}…", err=True)
    model, report = learn(method, domain, **options)
    registry = PolicyRegistry(settings.home)
    row = registry.add(domain, model, method=method, report=report)
    if not no_gate:
        tests = list(tests_paths) or [p for p in (domain_path.parent / "holdout.yaml",
                                                  domain_path.parent / "tests.yaml")
                                      if p.is_file()][:1]
        click.echo(f"Gate: {row.key} against the serving policy on {gate_dialogues} simulated "
                   f"dialogues{' and ' + ', '.join(p.name for p in tests) if tests else ''}…",
                   err=True)
        scorer = _test_scorer(domain, tests, embedder) if tests else None
        gate(registry, domain, row.version, gate_settings, score_tests=scorer,
             embedder=embedder)
    row = registry.get(domain.name, row.version)
    if as_json:
        click.echo(json.dumps({"version": row.key, "status": row.status, "report": row.report},
                              indent=1))
        return
    click.echo(_format_policy_report(row.key, row.status, row.report, log_dir))


def _format_policy_report(key: str, status: str, report: dict, log_dir: Path) -> str:
    lines = [f"{key} ({report.get('method')}): {report.get('seconds', 0):.0f} s of training"
             + (f", {report['examples']} examples" if "examples" in report else "")
             + (f", {report['dialogues']} dialogues / {report['steps']} steps"
                if "steps" in report else "")]
    g = report.get("gate")
    if g:
        b, c = g["simulated"]["baseline"], g["simulated"]["candidate"]
        lines.append(f"  simulated ({b['dialogues']} dialogues, noise "
                     f"{g['settings']['noise']}): {'':<8} before ({b['policy']})  after")
        for k, label in [("task_success", "task success"), ("average_turns", "average turns"),
                         ("average_reward", "average reward"), ("hand_off_rate", "hand-offs")]:
            lines.append(f"    {label:<16} {b[k]:>10.3f}  {c[k]:>10.3f}")
        if "tests" in g:
            lines.append(f"  test dialogues task success {g['tests']['baseline']:.3f} -> "
                         f"{g['tests']['candidate']:.3f}")
        verdict = "promoted: it serves now" if g["passed"] else \
            "rejected: " + "; ".join(g["reasons"])
        lines.append(f"  gate: {verdict}")
    else:
        lines.append("  not gated: a candidate (serve it with --policy "
                     f"v{key.rsplit('@v', 1)[1]})")
    lines.append(f"  status {status}; TensorBoard logs: {log_dir}")
    return "\n".join(lines)


def _test_scorer(domain: object, paths: list[Path], embedder: object):  # type: ignore[no-untyped-def]
    """Task success of a policy on scripted test dialogues (no model: a silent engine)."""
    from dialoop.dialogue.domain import load_scripts
    from dialoop.dialogue.intent import IntentClassifier
    from dialoop.eval.dialogue import run_dialogues
    from dialoop.policy.simulation import SilentEngine

    scripts = [s for p in paths for s in load_scripts(p, domain)]  # type: ignore[arg-type]
    classifier = IntentClassifier(domain, embedder)  # type: ignore[arg-type]
    engine = _EmptyAnswers(SilentEngine())
    return lambda p: run_dialogues(domain, scripts, engine=engine, policy=p,  # type: ignore
                                   classifier=classifier).task_success


class _EmptyAnswers:
    """An engine whose every generated answer is empty: task success on test dialogues
    rests on the decisions, tool calls and templates, not on generated words."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def stream(self, messages: object, params: object, **_: object):  # type: ignore[no-untyped-def]
        from dialoop.engine import Chunk, Usage

        yield Chunk("", finish_reason="stop", usage=Usage(0, 0, 0, 0.0, None))


def _quiet_manager() -> None:
    """A learned policy may ask for a read-back before the values are there: the manager
    logs a failed template each time, thousands of times in a run (-v shows them)."""
    import logging

    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("dialoop.dialogue.manager").setLevel(logging.CRITICAL)


@train.command("policies")
@click.option("--domain", "domain_name", required=True, metavar="NAME|PATH",
              help="The domain (its name, or its file).")
@click.option("--rollback", metavar="VERSION|none",
              help="Serve this earlier promoted version again (none: the rules).")
@click.pass_context
def policies(ctx: click.Context, domain_name: str, rollback: str | None) -> None:
    """List a domain's policy versions (or roll back to one)."""
    from dialoop.policy.registry import PolicyRegistry

    if domain_name.endswith((".yaml", ".yml")) and Path(domain_name).is_file():
        from dialoop.dialogue.domain import load_domain

        domain_name = load_domain(Path(domain_name)).name
    registry = PolicyRegistry(settings_from(ctx).home)
    if rollback is not None:
        target = None if rollback == "none" else int(rollback.lstrip("v"))
        registry.rollback(domain_name, target)
        click.echo(f"{domain_name}: serving {'the rules' if target is None else f'v{target}'}.")
        return
    serving = registry.serving(domain_name)
    rows = registry.versions(domain_name)
    if not rows:
        click.echo(f"No policy versions for {domain_name}: `dialoop train policy` makes one.")
    for v in rows:
        mark = "*" if serving is not None and v.version == serving.version else " "
        gate = v.report.get("gate", {})
        sim = gate.get("simulated", {}).get("candidate", {}).get("task_success")
        click.echo(f"{mark} v{v.version:<3} {v.method:<13} {v.status:<10} {v.created_at}"
                   + (f"  simulated success {sim:.3f}" if sim is not None else ""))
