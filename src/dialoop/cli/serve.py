"""``dialoop serve``: the API and the web page, under uvicorn."""

from __future__ import annotations

import logging
from typing import Any

import click

from dialoop import __version__
from dialoop.assistant import open_assistant
from dialoop.cli import command_db
from dialoop.cli.chat import model_options
from dialoop.config import Settings
from dialoop.store.accounts import Accounts

__all__ = ["serve"]

log = logging.getLogger(__name__)


def _default_engines() -> int:
    """Two copies of the model on a machine with two cores or more (see serve/pool.py)."""
    from dialoop.engine.llamacpp import default_threads

    return 2 if default_threads() >= 2 else 1


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Without API keys only loopback is allowed.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Answer requests for this host name (repeatable; '*': any); replaces "
                   "serve_allowed_hosts. IP addresses and localhost always work.")
@click.option("--domain", type=click.Path(exists=True, dir_okay=False),
              help="A domain file (intents, slots, tools) for the dialogue manager.")
@click.option("--policy", metavar="rule|learned|VERSION",
              help="The domain's dialogue policy: rule, learned, or a stored version (vN, N, "
                   "'serving').")
@click.option("--engines", type=click.IntRange(1, 16),
              help="Copies of the model answering at once (default: 2 on 2+ cores).")
@click.option("--batch-slots", type=click.IntRange(0, 64),
              help="Decode up to N answers together in one llama.cpp context instead of a "
                   "pool of engines (0: off; default: the batch_slots setting).")
@click.option("--max-waiting", default=32, show_default=True, type=click.IntRange(0, 10_000),
              help="Answers that may wait for an engine; beyond, requests get a 503.")
@click.option("--no-learn", is_flag=True,
              help="Do not consolidate lessons and ratings by itself (learn_auto = false).")
@model_options
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, allow_hosts: tuple[str, ...],
          domain: str | None, policy: str | None, engines: int | None,
          batch_slots: int | None, max_waiting: int,
          no_learn: bool, model: str | None, engine: str | None, adapter: str | None,
          system: str | None) -> None:
    """Serve the OpenAI-compatible API, dialoop's API and the web page."""
    from dialoop.serve import create_app
    from dialoop.serve.guard import names_for_bind
    from dialoop.serve.pool import open_engines
    from dialoop.serve.server import is_loopback, run_server

    overrides: dict[str, Any] = {"serve_allowed_hosts": list(allow_hosts)} if allow_hosts else {}
    if batch_slots is not None:
        overrides["batch_slots"] = batch_slots
    with command_db(ctx, model=model, engine=engine, adapter=adapter, system_prompt=system,
                    learn_auto=False if no_learn else None, **overrides) as (db, settings):
        have_keys = Accounts(db).any_active()
    if not have_keys and not is_loopback(host):
        raise _Refused(f"No API key exists, so the server may listen on loopback only, not on "
                       f"{host}: create one first (`dialoop users add NAME --role admin`).")
    count = engines or (_default_engines() if settings.engine == "llamacpp" else 1)
    if settings.batch_slots:
        count = engines or 1
        click.echo(f"Loading {settings.model} model (batched: {settings.batch_slots} answers "
                   "at once)…", err=True)
    else:
        click.echo(f"Loading {settings.model} model ({count} engine{'s' * (count > 1)})…",
                   err=True)
    pool = open_engines(settings, count)
    extra: dict[str, Any] = {"domain": domain} if domain else {}  # the dialogue manager's
    if policy:
        extra["policy"] = policy
    bot = open_assistant(settings, engine=pool, **extra)
    try:
        app = create_app(bot, keys_required=have_keys or not is_loopback(host),
                         max_waiting=max_waiting,
                         allowed_hosts=[*settings.serve_allowed_hosts, *names_for_bind(host)])
        mode = "API keys required" if have_keys else "local mode: no keys, this machine only"
        click.echo(f"dialoop {__version__} serving {bot.engine.name} at http://{host}:{port} "
                   f"({mode}). Web page: /  API docs: /docs  Ctrl-C stops.", err=True)
        click.echo(_learning_note(settings), err=True)
        run_server(app, host, port, log_level="info" if log.isEnabledFor(logging.INFO)
                   else "warning")
    finally:
        bot.close()
        pool.close()  # shared with the assistant, so not closed by it


class _Refused(click.ClickException):
    """A one-line refusal that exits 2, as a usage error does (without the usage text)."""

    exit_code = 2


def _learning_note(settings: Settings) -> str:
    if settings.learn_auto is False:
        return "Learning: lessons apply at once; consolidation runs only when asked."
    parts = []
    if settings.learn_auto_after:
        parts.append(f"after {settings.learn_auto_after} new lessons or ratings")
    if settings.learn_auto_idle_seconds:
        parts.append(f"after {settings.learn_auto_idle_seconds:.0f} s idle with some waiting")
    when = " or ".join(parts) or "never (learn_auto_after and learn_auto_idle_seconds are 0)"
    return f"Learning: consolidates into an adapter by itself {when} (--no-learn: off)."
