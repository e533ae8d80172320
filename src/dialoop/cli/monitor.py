"""``dialoop monitor ingest|report|alerts|items|correct|train``: sentiment monitoring.

The monitor's config (topics, bucket, alert rules) is ``--config FILE``, else
``$DIALOOP_HOME/monitor.yaml`` when it exists (the server reads that one too), else
the built-in one: a single topic and the default rules. No chat model is loaded: the
monitor needs only the sentence encoder.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from dialoop.cli import command_db
from dialoop.config import Settings
from dialoop.monitor import SENTIMENTS, Monitor, format_of, load_config, read_items
from dialoop.monitor.report import plot_series, summarize
from dialoop.store.models import MAX_ID

__all__ = ["CONFIG_FILE", "monitor"]

CONFIG_FILE = "monitor.yaml"
_CONFIG_KEY = "dialoop.monitor.config"

user_option = click.option("--user", help="Act as this user (default: the 'user' setting).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
topic_option = click.option("--topic", help="Only this topic.")


@click.group()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help=f"Topics and alert rules (YAML; default $DIALOOP_HOME/{CONFIG_FILE}).")
@click.pass_context
def monitor(ctx: click.Context, config_path: Path | None) -> None:
    """Watch texts for topic and sentiment trends; alert on negative surges."""
    ctx.meta[_CONFIG_KEY] = config_path  # not ctx.obj: that holds the settings overrides


@contextmanager
def _monitor(ctx: click.Context, user: str | None) -> Iterator[tuple[Monitor, Settings]]:
    from dialoop.engine.embedding import default_embedder

    with command_db(ctx, **({"user": user} if user else {})) as (db, settings):
        path = ctx.meta.get(_CONFIG_KEY)
        if path is None and (settings.home / CONFIG_FILE).is_file():
            path = settings.home / CONFIG_FILE
        yield Monitor(db, default_embedder(), load_config(path)), settings


@monitor.command()
@click.argument("source", metavar="FILE|-")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]),
              help="The input's format (default: from the file name; jsonl for -).")
@user_option
@json_option
@click.pass_context
def ingest(ctx: click.Context, source: str, fmt: str | None, user: str | None,
           as_json: bool) -> None:
    """Label and count the items of FILE (JSON Lines or CSV with text, time, source), or of
    standard input for -."""
    with _monitor(ctx, user) as (mon, settings):
        if source == "-":
            result = mon.ingest(read_items(sys.stdin, fmt or "jsonl", name="stdin"),
                                user=settings.user)
        else:
            path = Path(source)
            if not path.is_file():
                raise click.BadParameter(f"{path} is not a file.", param_hint="FILE")
            with path.open(encoding="utf-8", newline="") as f:
                result = mon.ingest(read_items(f, format_of(path, fmt), name=str(path)),
                                    user=settings.user)
    if as_json:
        click.echo(json.dumps(result.to_dict(ids=False), default=str))
        return
    click.echo(f"Ingested {result.ingested} items in {result.seconds:.1f} s: "
               + ", ".join(f"{result.by_sentiment[s]} {s}" for s in SENTIMENTS))
    click.echo("Topics: " + ", ".join(f"{t} {n}" for t, n in result.by_topic.most_common()))
    for a in result.alerts:
        click.secho(f"ALERT {_alert_line(a)}", fg="red")


@monitor.command()
@topic_option
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw the series to this image (PNG, SVG or PDF).")
@user_option
@json_option
@click.pass_context
def report(ctx: click.Context, topic: str | None, plot: Path | None, user: str | None,
           as_json: bool) -> None:
    """Per-topic trends: items, sentiment shares, the recent negative share, alerts."""
    with _monitor(ctx, user) as (mon, settings):
        series = mon.series(user=settings.user, topic=topic)
        alerts = mon.alerts(user=settings.user, topic=topic, limit=10_000)
        bucket = mon.config.bucket_seconds
    rows = summarize(series, alerts)
    if plot is not None:
        plot_series(series, alerts, plot)
    if as_json:
        click.echo(json.dumps({"bucket_seconds": bucket, "topics": rows,
                               **({"plot": str(plot)} if plot else {})}, default=str))
        return
    if not rows:
        click.echo("No items yet: `dialoop monitor ingest FILE` adds some.")
        return
    click.echo(f"{'topic':<16} {'items':>6} {'neg':>6} {'neu':>6} {'pos':>6}  "
               f"{'recent neg':>10} {'before':>7} {'trend':>7} {'alerts':>6}")
    for r in rows:
        recent, before = _pct(r["recent_negative_share"]), _pct(r["previous_negative_share"])
        click.echo(f"{r['topic']:<16} {r['items']:>6} {r['negative_share']:>6.1%} "
                   f"{r['neutral_share']:>6.1%} {r['positive_share']:>6.1%}  "
                   f"{recent:>10} {before:>7} {_signed(r['trend']):>7} {r['alerts']:>6}")
    click.echo(f"(buckets of {bucket} s; recent = the last 6 buckets, before = the 6 before)")
    if plot is not None:
        click.echo(f"Chart: {plot}")


@monitor.command()
@topic_option
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@user_option
@json_option
@click.pass_context
def alerts(ctx: click.Context, topic: str | None, limit: int, user: str | None,
           as_json: bool) -> None:
    """The alerts recorded so far, the latest first."""
    with _monitor(ctx, user) as (mon, settings):
        found = mon.alerts(user=settings.user, topic=topic, limit=limit)
    if as_json:
        click.echo(json.dumps(found, default=str))
        return
    if not found:
        click.echo("No alerts.")
    for a in found:
        click.echo(_alert_line(a))


@monitor.command()
@topic_option
@click.option("--sentiment", type=click.Choice(SENTIMENTS))
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@user_option
@json_option
@click.pass_context
def items(ctx: click.Context, topic: str | None, sentiment: str | None, limit: int,
          user: str | None, as_json: bool) -> None:
    """The latest items with their ids and labels (to correct them)."""
    with _monitor(ctx, user) as (mon, settings):
        found = mon.items(user=settings.user, topic=topic, sentiment=sentiment, limit=limit)
    if as_json:
        click.echo(json.dumps(found, default=str, ensure_ascii=False))
        return
    for i in found:
        mark = "*" if i["corrected"] else " "
        click.echo(f"{i['id']:>7}{mark} {i['time']:%Y-%m-%d %H:%M}  {i['topic']:<12} "
                   f"{i['sentiment']:<8} {i['confidence']:.2f}  {_short(i['text'])}")


@monitor.command()
@click.argument("item_id", type=click.IntRange(1, MAX_ID))
@click.option("--sentiment", type=click.Choice(SENTIMENTS), help="The right sentiment.")
@click.option("--topic", help="The right topic.")
@user_option
@json_option
@click.pass_context
def correct(ctx: click.Context, item_id: int, sentiment: str | None, topic: str | None,
            user: str | None, as_json: bool) -> None:
    """Correct item ITEM_ID's labels; `dialoop monitor train` learns from corrections."""
    with _monitor(ctx, user) as (mon, settings):
        row = mon.correct(item_id, user=settings.user, sentiment=sentiment, topic=topic)
    if as_json:
        click.echo(json.dumps(row, default=str, ensure_ascii=False))
        return
    was = row["was"]
    click.echo(f"Item {item_id}: {was['topic']}/{was['sentiment']} → "
               f"{row['topic']}/{row['sentiment']}. `dialoop monitor train` retrains.")


@monitor.command()
@user_option
@json_option
@click.pass_context
def train(ctx: click.Context, user: str | None, as_json: bool) -> None:
    """Retrain the sentiment head from your corrections; it serves only if the gate passes."""
    with _monitor(ctx, user) as (mon, settings):
        out = mon.train(user=settings.user)
    if as_json:
        click.echo(json.dumps(out, default=str))
        return
    held, check = out["held_out_accuracy"], out["check_accuracy"]
    verdict = "accepted" if out["accepted"] else "rejected"
    click.echo(f"Head {out['version']} {verdict}: {out['reason']}.")
    click.echo(f"  trained on {out['trained_on']} corrections; held-out corrections "
               f"({out['held_out']}): {held['current']:.3f} → {held['candidate']:.3f}; "
               f"check sentences: {check['current']:.3f} → {check['candidate']:.3f}")
    click.echo(f"  serving head {out['serving']}")


def _alert_line(a: dict[str, Any]) -> str:
    return f"{a['bucket']:%Y-%m-%d %H:%M}  {a['topic']:<12} {a['rule']:<16} {a['message']}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.1f}pp"


def _short(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"
