"""The ``dialoop`` command.

Each command group lives in its own module and is attached here. Errors of the
:class:`~dialoop.errors.DialoopError` tree become one line on stderr and exit
status 1; usage errors exit 2 (click's convention); Ctrl-C outside an answer
exits 130.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dialoop import __version__
from dialoop.config import Settings, load_settings
from dialoop.errors import DialoopError
from dialoop.store import Database, open_database

if TYPE_CHECKING:
    from dialoop.assistant import Parts

__all__ = ["cli", "command_db", "command_parts", "eval_group", "main", "settings_from"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="DIALOOP_HOME",
              help="Where dialoop keeps its data (default ~/.dialoop).")
@click.option("-v", "--verbose", count=True, help="Log more (-vv for debug).")
@click.version_option(__version__, prog_name="dialoop")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, verbose: int) -> None:
    """Local-first LLM assistants that converse, ground and learn."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"home": home}


@cli.group("eval")
def eval_group() -> None:
    """Measure the assistant: dialogues, knowledge answers, trained models."""


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings with the global options and a command's own options applied."""
    return load_settings(**ctx.find_root().obj, **overrides)


@contextmanager
def command_db(ctx: click.Context, **overrides: Any) -> Iterator[tuple[Database, Settings]]:
    """The command's settings (see :func:`settings_from`) and their database, open until
    the block ends."""
    settings = settings_from(ctx, **overrides)
    db = open_database(settings.resolved_database_url, timeout=settings.db_timeout)
    try:
        yield db, settings
    finally:
        db.close()


@contextmanager
def command_parts(ctx: click.Context, **overrides: Any) -> Iterator[Parts]:
    """The parts of an assistant (no model: see :func:`~dialoop.assistant.open_parts`) for a
    command's settings, open until the block ends."""
    from dialoop.assistant import open_parts

    parts = open_parts(settings_from(ctx, **overrides))
    try:
        yield parts
    finally:
        parts.close()


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except DialoopError as exc:
        click.secho(f"Error: {exc}", err=True, fg="red")
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("", err=True)
        sys.exit(130)


def _register() -> None:
    from dialoop.cli import chat, dialogue, importers, kg, learn, serve, sessions, train, users

    cli.add_command(chat.chat)
    cli.add_command(chat.ask)
    cli.add_command(sessions.sessions)
    cli.add_command(sessions.models)
    cli.add_command(dialogue.trace)  # `eval dialogue` registers itself on eval_group
    cli.add_command(dialogue.simulate)
    cli.add_command(train.train)  # and `eval model`, which attaches itself to eval_group
    cli.add_command(serve.serve)
    cli.add_command(users.users)
    kg.register(cli, eval_group)
    cli.add_command(learn.learn)
    cli.add_command(learn.teach)
    cli.add_command(importers.import_group)
    from dialoop.cli import monitor

    cli.add_command(monitor.monitor)
    from dialoop.cli import recommend

    cli.add_command(recommend.recommend)
    from dialoop.cli import media

    cli.add_command(media.transcribe)
    cli.add_command(media.speak)
    from dialoop.cli import transformer

    cli.add_command(transformer.transformer)


_register()
