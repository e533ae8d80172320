"""``dialoop sessions list|show|export|summarize|delete`` and ``dialoop models``: no model is
loaded, except by ``summarize --kind model``.

``export --format openai|sharegpt`` turns stored sessions into training data
(:mod:`dialoop.train.transcripts`); ``summarize`` stores and prints a session's summary
(:mod:`dialoop.dialogue.summary`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dialoop.cli import command_db, settings_from
from dialoop.config import Settings
from dialoop.dialogue.session import ChatSession, Sessions
from dialoop.dialogue.summary import (
    ExtractiveSummariser,
    ModelSummariser,
    Summary,
    summarize_session,
)
from dialoop.errors import InvalidInputError
from dialoop.train.transcripts import BadAnswers, TrainingFormat, training_records

if TYPE_CHECKING:
    from dialoop.engine.formats import Record

__all__ = ["models", "sessions"]


@contextmanager
def _sessions(ctx: click.Context, user: str | None) -> Iterator[tuple[Sessions, Settings]]:
    with command_db(ctx, user=user) as (db, settings):
        yield Sessions(db), settings


user_option = click.option("--user", help="Whose sessions (default: the 'user' setting).")


@click.group()
def sessions() -> None:
    """List, show, export, summarize and delete stored sessions."""


@sessions.command("list")
@user_option
@click.option("--limit", default=50, show_default=True, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_(ctx: click.Context, user: str | None, limit: int, as_json: bool) -> None:
    """List sessions, most recently used first."""
    with _sessions(ctx, user) as (store, settings):
        items = store.list(settings.user, limit=limit)
    if as_json:
        click.echo(json.dumps([
            {"id": i.session.id, "name": i.session.name, "title": i.session.title,
             "turns": i.turns, "updated_at": i.session.updated_at.isoformat()}
            for i in items
        ], ensure_ascii=False))
        return
    if not items:
        click.echo("No sessions yet: `dialoop chat` starts one.")
    for i in items:
        when = i.session.updated_at.strftime("%Y-%m-%d %H:%M")
        click.echo(f"{i.session.label:<20} {i.turns:>4} turns  {when}  {i.session.title or ''}")


@sessions.command()
@click.argument("session")
@user_option
@click.pass_context
def show(ctx: click.Context, session: str, user: str | None) -> None:
    """Show a SESSION (name or id) turn by turn."""
    with _sessions(ctx, user) as (store, settings):
        s = store.get(session, settings.user)
        turns = store.turns(s)
    click.echo(f"Session {s.label} (id {s.id}) · {len(turns)} turns · model {s.model} · "
               f"started {s.created_at:%Y-%m-%d %H:%M} UTC")
    if s.system_prompt:
        click.echo(f"system: {s.system_prompt}")
    for t in turns:
        who = "you" if t.role == "user" else "assistant"
        mark = "" if t.status == "complete" else f" ({t.status})"
        click.echo(f"[{t.id}] {who}{mark}: {t.content}")


@sessions.command()
@click.argument("session", required=False)
@click.option("--all", "every", is_flag=True, help="Every session of the user, oldest first.")
@click.option("--format", "fmt", type=click.Choice(["dialoop", "openai", "sharegpt"]),
              default="dialoop", show_default=True,
              help="dialoop: as stored (JSON). openai, sharegpt: training data (JSONL, one "
                   "session a line) for `dialoop train sft`.")
@click.option("--bad", type=click.Choice(["drop", "keep", "mark"]),
              help="Training formats: an answer rated bad and not corrected is dropped with "
                   "its question (default), kept, or kept with weight 0 (context only).")
@user_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of stdout.")
@click.pass_context
def export(ctx: click.Context, session: str | None, every: bool, fmt: str, bad: str | None,
           user: str | None, output: Path | None) -> None:
    """Export a SESSION (name or id), or --all, as stored or as training data.

    In the training formats a correction replaces the answer it corrected, and stopped
    answers are left out.
    """
    if (session is None) == (not every):
        raise InvalidInputError("Name one session to export, or give --all for every one.")
    if fmt == "dialoop" and bad is not None:
        raise InvalidInputError("--bad is for training data: add --format openai or sharegpt.")
    with _sessions(ctx, user) as (store, settings):
        chosen = store.of_user(settings.user) if every else [store.get(session or "",
                                                                         settings.user)]
        if fmt == "dialoop":
            exported = [store.export(s.id, settings.user) for s in chosen]
            text = json.dumps(exported if every else exported[0], ensure_ascii=False, indent=2)
            what = f"{len(exported)} session{'s' * (len(exported) != 1)}"
        else:
            text, what = _training_data(store, chosen, fmt, bad or "drop")  # type: ignore[arg-type]
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(f"Wrote {what} to {output}", err=True)
    else:
        click.echo(text)


def _training_data(store: Sessions, chosen: list[ChatSession], fmt: TrainingFormat,
                   bad: BadAnswers) -> tuple[str, str]:
    """The sessions as JSONL training data, and what it holds (for the message)."""
    lines = [json.dumps(r, ensure_ascii=False)
             for r in training_records(store.db, chosen, fmt=fmt, bad=bad)]
    if not lines:
        raise InvalidInputError(
            "No answer to learn from: the sessions are empty, or every answer was stopped "
            "or rated bad (--bad keep keeps those).")
    left = len(chosen) - len(lines)
    note = f" ({left} without an answer to learn from left out)" if left else ""
    return "\n".join(lines), f"{len(lines)} dialogue{'s' * (len(lines) != 1)}{note}"


@sessions.command()
@click.argument("session")
@user_option
@click.option("--kind", type=click.Choice(["model", "extractive"]),
              help="Who writes it: the model, or the user's fact-stating sentences as said "
                   "(default: the context_summarizer setting).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def summarize(ctx: click.Context, session: str, user: str | None, kind: str | None,
              as_json: bool) -> None:
    """Summarise a SESSION (name or id) and store the summary.

    A summary already made for the same turns is printed again, not made anew.
    """
    with _sessions(ctx, user) as (store, settings):
        found = store.find(session, settings.user)
        if found is None:  # another user's session is not found either
            raise click.BadParameter(
                f"no session {session!r} of user {settings.user!r}: `dialoop sessions list` "
                "shows the ones you have.", param_hint="SESSION")
        summary = _summary_of(store, found, settings, kind or settings.context_summarizer)
    if as_json:
        click.echo(json.dumps({"session_id": found.id, **summary.to_dict()},
                              ensure_ascii=False))
        return
    click.echo(f"{summary.label}, session {found.label} ({summary.kind}, "
               f"{summary.covers} messages, summary:{summary.id}):")
    click.echo(summary.text or "(nothing the user said stands out as a fact)")


def _summary_of(store: Sessions, session: ChatSession, settings: Settings,
                kind: str) -> Summary:
    """``session``'s summary by a summariser of ``kind``; the model is loaded only for it."""
    if kind == "extractive":
        return summarize_session(store.db, session, ExtractiveSummariser())
    from dialoop.engine import open_engine

    engine = open_engine(settings)
    try:
        return summarize_session(store.db, session, ModelSummariser(engine))
    finally:
        engine.close()


@sessions.command()
@click.argument("session")
@user_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, session: str, user: str | None, yes: bool) -> None:
    """Delete a SESSION and all its turns."""
    with _sessions(ctx, user) as (store, settings):
        s = store.get(session, settings.user)
        if not yes:
            click.confirm(f"Delete session {s.label} and all its turns?", abort=True)
        store.delete(s.id, settings.user)
    click.echo(f"Deleted session {s.label}.")


@click.command()
@click.option("--bench", is_flag=True,
              help="Measure the weight formats on this host, pick and cache the fastest that "
                   "answers as the original does, and print the table (about a minute).")
@click.option("--quick", is_flag=True, help="With --bench: 1 run of fewer tokens (noisier).")
@click.pass_context
def models(ctx: click.Context, bench: bool, quick: bool) -> None:
    """Show the bundled model, the configured one, the weight format served, and caches."""
    from dialoop.engine.models import DEFAULT_MODEL_NAME, bundled_gguf
    from dialoop.errors import ModelNotFoundError

    settings = settings_from(ctx)
    try:
        path = bundled_gguf()
        click.echo(f"default     {DEFAULT_MODEL_NAME}  {path}  "
                   f"({path.stat().st_size / 2**20:.0f} MiB, GGUF)")
    except ModelNotFoundError as exc:
        click.echo(f"default     missing: {exc}")
    click.echo(f"configured  {settings.model} on the {settings.engine} engine"
               + (f" at {settings.remote_url}" if settings.engine == "remote" else ""))
    _weight_format(settings, bench=bench, quick=quick)
    cache = settings.home / "cache" / "models"
    for folder in sorted(cache.glob("*/")) if cache.is_dir() else []:
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        click.echo(f"cached      {folder.name}  ({size / 2**20:.0f} MiB, torch weights)")


def _weight_format(settings: Settings, *, bench: bool, quick: bool) -> None:
    """The weight format served for the configured GGUF model; with ``bench``, pick it first."""
    from dialoop.engine import formats
    from dialoop.engine.models import resolve_model

    local = settings.model in ("", "default") or Path(settings.model).expanduser().exists()
    if settings.engine != "llamacpp" or not local:
        if bench:
            raise InvalidInputError("--bench measures a local GGUF model on the llamacpp "
                                    "engine; the configured model is not one.")
        return
    source = resolve_model(settings.model, home=settings.home).require_gguf()
    if bench:
        click.echo("measuring weight formats on this host...", err=True)
        budget = formats.Budget(runs=1, decode_tokens=16, prefill_tokens=128, ppl_tokens=256,
                                prompts=1) if quick else formats.Budget()
        _print_bench(formats.pick(source, settings.home, budget=budget,
                                        threads=settings.threads))
    served = formats.served_file(source, settings.home, settings.weight_format)
    click.echo(f"serving     {served.format}  {served.path}  "
               f"({served.path.stat().st_size / 2**20:.0f} MiB); {served.reason}")
    record = served.record
    if record is not None and served.format in {f.format for f in record.formats}:
        f = record.figures(served.format)
        click.echo(f"            decode {f.decode:.0f} tok/s, prefill {f.prefill:.0f} tok/s, "
                   f"top-1 agreement {f.top1:.3f}, perplexity x{f.ppl_ratio:.3f} "
                   f"(measured {record.measured} on {record.host['cpu']})")
    click.echo(f"            threads {settings.threads or served.threads}, n_batch "
               f"{served.n_batch or 512}, n_ubatch {served.n_ubatch or 512}")
    if record is not None and record.batch_choice:
        batched = formats.served_file(source, settings.home, settings.weight_format,
                                      batched=True)
        click.echo(f"batched     {batched.format} when serving with batch_slots; "
                   f"{batched.reason}")


def _print_bench(record: Record) -> None:
    click.echo(f"cpu: {record.host['cpu']}; flags: {' '.join(record.host['flags'])}; "
               f"llama-cpp-python {record.host['llama_cpp']}")
    header = (f"{'format':<9}{'MB':>7}{'decode t/s':>12}{'prefill t/s':>13}{'top-1':>7}"
              f"{'ppl x':>7}{'greedy':>8}{'turn s':>8}{'16 at once t/s':>16}  quality gate")
    click.echo(header)
    click.echo("-" * len(header))
    for f in record.formats:
        click.echo(f"{f.format:<9}{f.size / 1e6:>7.1f}{f.decode:>12.1f}{f.prefill:>13.1f}"
                   f"{f.top1:>7.3f}{f.ppl_ratio:>7.3f}{f.greedy:>8.2f}{f.turn_seconds:>8.2f}"
                   f"{f.batch_decode:>16.1f}  {f.verdict() or 'pass'}")
    click.echo(f"chosen: {record.choice}: {record.reason}")
    if record.batch_choice:
        click.echo(f"chosen for batched serving (batch_slots): {record.batch_choice}: "
                   f"{record.batch_reason}")
    rates = ", ".join(f"{k}: {v:.0f}" for k, v in record.ubatch_prefill.items())
    click.echo(f"threads {record.threads} (physical cores), n_batch {record.n_batch}, "
               f"n_ubatch {record.n_ubatch} (prefill tok/s by n_ubatch: {rates})")
    click.echo("top-1 = teacher-forced agreement with the original on a held-out text; ppl x = "
               "perplexity / the original's; greedy = free-running agreement (not gated); "
               "turn s = a 512-token prompt and a 128-token answer; 16 at once = tokens/s "
               "of 16 answers decoded together by the batched engine")
