"""``dialoop teach`` and ``dialoop learn status|run|history|rollback|forget|report``,
and the feedback commands of ``dialoop chat`` (/good, /bad, /correct).

None of these load the chat model: feedback and lessons are database writes (plus a
sentence embedding); consolidation runs in a worker process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from dialoop.cli import command_parts, settings_from
from dialoop.cli.chat import COMMANDS, Repl, SlashCommand
from dialoop.config import Settings
from dialoop.errors import InvalidInputError
from dialoop.learn.loop import LearningLoop, run_to_dict
from dialoop.learn.worker import spawn, wait_for
from dialoop.store.adapters import parse_ref
from dialoop.store.models import LearnRun

__all__ = ["learn", "teach"]


@contextmanager
def _loop(ctx: click.Context, user: str | None) -> Iterator[tuple[LearningLoop, Settings]]:
    with command_parts(ctx, user=user) as parts:
        yield parts.learning, parts.settings


user_option = click.option("--user", help="Act as this user (default: the 'user' setting).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.command()
@click.argument("question")
@click.argument("answer")
@user_option
@click.option("--scope", type=click.Choice(["user", "global"]), default="user",
              show_default=True, help="Just this user, or everyone (admins only).")
@json_option
@click.pass_context
def teach(ctx: click.Context, question: str, answer: str, user: str | None, scope: str,
          as_json: bool) -> None:
    """Teach that QUESTION is answered with ANSWER (applies from the next question on)."""
    with _loop(ctx, user) as (loop, settings):
        receipt = loop.teach(question, answer, user=settings.user, scope=scope)
    if as_json:
        click.echo(json.dumps(receipt.to_dict()))
        return
    if receipt.joined:
        click.echo(f"Lesson {receipt.lesson_id} already taught that answer: this wording "
                   "joins it, and will find it from now on.")
        return
    replaced = (f"; it replaces lesson {', '.join(map(str, receipt.superseded))}"
                if receipt.superseded else "")
    click.echo(f"Learned lesson {receipt.lesson_id} ({scope}){replaced}. "
               "`dialoop learn run` consolidates lessons into the model.")


@click.group()
def learn() -> None:
    """See and steer what the assistant learns: lessons, runs, adapter versions."""


@learn.command()
@user_option
@json_option
@click.pass_context
def status(ctx: click.Context, user: str | None, as_json: bool) -> None:
    """Lessons, the adapter serving you, the last run and its gate report, satisfaction."""
    with _loop(ctx, user) as (loop, settings):
        info = loop.status(user=settings.user)
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, default=str))
        return
    n = info["lessons"]
    click.echo(f"Lessons: {n['active']} active ({n['pending']} pending, {n['in_adapter']} in "
               f"the adapter), {n['superseded']} superseded, {n['forgotten']} forgotten")
    click.echo(f"Adapter serving {info['user']}: {info['adapter'] or 'none (base model)'}")
    run = info["last_run"]
    if run:
        click.echo(f"Last run: #{run['id']} {run['status']}"
                   + (f" — {run['error']}" if run["error"] else ""))
        for line, result in (run["report"] or {}).get("lines", {}).items():
            click.echo(f"  {line}: {_line_summary(result)}")
    for key, sat in sorted(info["satisfaction"].items()):
        click.echo(f"Satisfaction with {key}: {sat['satisfaction']:.0%} of {sat['ratings']} "
                   "ratings positive")


@learn.command()
@click.option("--wait", is_flag=True, help="Wait for the run, with a progress bar.")
@click.option("--epochs", type=int, help="Training epochs for this run.")
@click.option("--min-reliability", type=float, help="Gate threshold for this run.")
@click.option("--min-generalization", type=float, help="Gate threshold for this run.")
@click.option("--min-locality", type=float, help="Gate threshold for this run.")
@user_option
@json_option
@click.pass_context
def run(ctx: click.Context, wait: bool, epochs: int | None, min_reliability: float | None,
        min_generalization: float | None, min_locality: float | None, user: str | None,
        as_json: bool) -> None:
    """Consolidate the active lessons into adapters (in a background worker)."""
    options = {k: v for k, v in {
        "learn_epochs": epochs, "learn_gate_reliability": min_reliability,
        "learn_gate_generalization": min_generalization, "learn_gate_locality": min_locality,
    }.items() if v is not None}
    with _loop(ctx, user) as (loop, settings):
        if options:  # validate now, not in the worker
            settings_from(ctx, user=user, **options)
        queued = loop.start_run(user=settings.user, options=options, background=False)
        worker = spawn(settings)
        if not wait:
            click.echo(f"Run #{queued.id} queued; `dialoop learn status` follows it.")
            return
        finished = _wait_with_bar(loop, queued, worker)
    if as_json:
        click.echo(json.dumps(run_to_dict(finished), ensure_ascii=False, default=str))
        return
    click.echo(f"Run #{finished.id} {finished.status}"
               + (f": {finished.error}" if finished.error else ""))
    for line, result in (finished.report or {}).get("lines", {}).items():
        click.echo(f"  {line}: {_line_summary(result)}")
    if finished.status != "done":
        raise SystemExit(1)


def _wait_with_bar(loop: LearningLoop, queued: LearnRun, worker: Any) -> LearnRun:
    with click.progressbar(length=1000, label=f"Run #{queued.id}", show_eta=False,
                           item_show_func=lambda s: s) as bar:
        shown = 0

        def show(r: LearnRun) -> None:
            nonlocal shown
            target = int(r.progress * 1000)
            bar.update(max(0, target - shown), r.stage or r.status)
            shown = max(shown, target)

        return wait_for(loop.db, queued.id, progress=show, settings=loop.settings,
                        worker=worker)


def _line_summary(result: dict[str, Any]) -> str:
    outcome = result.get("outcome", "?")
    if "gate" not in result:
        return f"{outcome}" + (f" ({result['note']})" if result.get("note") else "")
    m = result["gate"]["metrics"]
    parts = [f"{k} {v:.2f}" for k, v in m.items() if v is not None]
    failed = result["gate"]["failed"]
    return (f"v{result['version']} {outcome} · " + ", ".join(parts)
            + (f" · below threshold: {', '.join(failed)}" if failed else "")
            + f" · {result['train']['seconds']:.0f} s training, "
            f"{result['gate']['seconds']:.0f} s gate")


@learn.command()
@click.option("--line", help="Only this adapter line (global, user:NAME, …).")
@user_option
@json_option
@click.pass_context
def history(ctx: click.Context, line: str | None, user: str | None, as_json: bool) -> None:
    """Adapter versions, their gate metrics and satisfaction, oldest first."""
    with _loop(ctx, user) as (loop, settings):
        rows = loop.history(user=settings.user, line=line)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, default=str))
        return
    if not rows:
        click.echo("No adapter versions yet: `dialoop learn run` trains one.")
    for r in rows:
        m = r["gate"].get("metrics", {})
        gate = " ".join(f"{k[:3]}={v:.2f}" for k, v in m.items() if v is not None)
        sat = f" sat={r['satisfaction']:.0%}" if r["satisfaction"] is not None else ""
        style = f" +style ({r['ratings']} ratings)" if r["style"] else ""
        click.echo(f"{'*' if r['serving'] else ' '} {r['key']:<24} {r['status']:<10} "
                   f"{r['lessons']:>4} lessons{style}  {gate}{sat}")


@learn.command()
@click.argument("version", metavar="[LINE@]vN|none")
@user_option
@click.pass_context
def rollback(ctx: click.Context, version: str, user: str | None) -> None:
    """Serve an earlier version again (v3, global@v3, user:ann@v2), or none."""
    line, number = _parse_version(version)
    with _loop(ctx, user) as (loop, settings):
        loop.rollback(line, number, user=settings.user)
    click.echo(f"{line} now serves " + (f"v{number}." if number else "the base model (none)."))


def _parse_version(text: str) -> tuple[str, int | None]:
    if text in ("none", "global@none") or text.endswith("@none"):
        return (text.rpartition("@")[0] or "global"), None
    if text.startswith("v") and text[1:].isdigit():
        return "global", int(text[1:])
    name, number = parse_ref(text)
    if number is None:
        raise InvalidInputError(f"Say which version: {text}@vN, or {text}@none.")
    return name, number


@learn.command()
@click.argument("lesson_id", type=int)
@user_option
@click.pass_context
def forget(ctx: click.Context, lesson_id: int, user: str | None) -> None:
    """Stop applying LESSON_ID now; the next run leaves it out of the adapter."""
    with _loop(ctx, user) as (loop, settings):
        lesson = loop.forget(lesson_id, user=settings.user)
    click.echo(f"Forgot lesson {lesson.id} ({lesson.question!r}). `dialoop learn run` "
               "removes it from the adapter too.")


@learn.command("lessons")
@click.option("--all", "show_all", is_flag=True, help="Include superseded and forgotten ones.")
@user_option
@json_option
@click.pass_context
def lessons_(ctx: click.Context, show_all: bool, user: str | None, as_json: bool) -> None:
    """List your lessons and the global ones."""
    with _loop(ctx, user) as (loop, settings):
        rows = loop.lessons(user=settings.user, status=None if show_all else "active")
    items = [{"id": x.id, "scope": x.scope, "status": x.status, "kind": x.kind,
              "question": x.question, "answer": x.answer} for x in rows]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False))
        return
    for x in items:
        click.echo(f"[{x['id']}] {x['scope']:<10} {x['status']:<10} {x['question']} → "
                   f"{x['answer']}")


@learn.command()
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Write the chart here (PNG).")
@click.option("--line", default="global", show_default=True, help="Adapter line to chart.")
@user_option
@click.pass_context
def report(ctx: click.Context, plot: Path, line: str, user: str | None) -> None:
    """Chart gate metrics and satisfaction over the adapter versions of a line."""
    from dialoop.learn.plot import plot_versions

    with _loop(ctx, user) as (loop, settings):
        rows = loop.history(user=settings.user, line=line)
    if not rows:
        raise InvalidInputError(f"No versions of {line!r} yet: `dialoop learn run` makes one.")
    plot_versions(rows, plot, title=f"Adapter line {line}")
    click.echo(f"Wrote {plot}")


# -- chat commands -------------------------------------------------------------------------


def _last_turn(repl: Repl) -> int:
    if repl.last_reply is None:
        raise InvalidInputError("No answer to give feedback on yet: ask something first.")
    return repl.last_reply.turn_id


def _good(repl: Repl, rest: str) -> None:
    repl.bot.parts.learning.rate(_last_turn(repl), +1, user=repl.session.user_id,
                                 reason=rest or None)
    click.echo("Thanks: noted as a good answer.")


def _bad(repl: Repl, rest: str) -> None:
    repl.bot.parts.learning.rate(_last_turn(repl), -1, user=repl.session.user_id,
                                 reason=rest or None)
    click.echo("Noted as a bad answer. /correct ANSWER teaches the right one.")


def _correct(repl: Repl, rest: str) -> None:
    if not rest:
        raise InvalidInputError("Usage: /correct THE RIGHT ANSWER")
    receipt = repl.bot.parts.learning.correct(_last_turn(repl), rest,
                                              user=repl.session.user_id)
    if receipt.joined:
        click.echo(f"Lesson {receipt.lesson_id} already taught that answer: it will know "
                   "this wording from now on.")
        return
    click.echo(f"Learned (lesson {receipt.lesson_id}): the next time this is asked, "
               "that is the answer.")


COMMANDS.update({
    "good": SlashCommand(_good, "rate the last answer good", "[REASON]"),
    "bad": SlashCommand(_bad, "rate the last answer bad", "[REASON]"),
    "correct": SlashCommand(_correct, "teach the answer it should have given", "ANSWER"),
})
