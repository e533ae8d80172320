"""``dialoop users add|list|revoke``: the accounts and API keys of ``dialoop serve``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import click

from dialoop.cli import command_db
from dialoop.store.accounts import ROLES, Accounts

__all__ = ["users"]


@contextmanager
def _accounts(ctx: click.Context) -> Iterator[Accounts]:
    with command_db(ctx) as (db, _):
        yield Accounts(db)


@click.group()
def users() -> None:
    """Manage who may use the server: users, their roles and their API keys."""


@users.command()
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="user", show_default=True,
              help="admin: may also promote lessons, roll back adapters, import knowledge.")
@click.pass_context
def add(ctx: click.Context, name: str, role: str) -> None:
    """Give NAME a new API key (creating the user if new) and print the key once."""
    with _accounts(ctx) as accounts:
        info, key = accounts.add_key(name, role)  # type: ignore[arg-type]
    click.echo(key)
    click.echo(f"Key {info.id} for {name} ({role}). Keep it now: it is stored only as a hash "
               "and cannot be shown again.", err=True)


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List users, their roles and their keys (ids only)."""
    with _accounts(ctx) as accounts:
        infos = accounts.list()
    if as_json:
        click.echo(json.dumps([
            {"user": u.user, "role": u.role, "created_at": u.created_at.isoformat(),
             "keys": [{"id": k.id, "created_at": k.created_at.isoformat(),
                       "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None}
                      for k in u.keys]}
            for u in infos
        ]))
        return
    if not infos:
        click.echo("No users: the server answers only on 127.0.0.1, without keys. "
                   "`dialoop users add NAME` creates one.")
    for u in infos:
        keys = ", ".join(k.id for k in u.active_keys) or "no active key"
        revoked = len(u.keys) - len(u.active_keys)
        click.echo(f"{u.user:<24} {u.role:<6} {keys}" + (f"  ({revoked} revoked)" if revoked
                                                          else ""))


@users.command()
@click.argument("ref", metavar="NAME|KEY_ID")
@click.option("--delete", is_flag=True, help="Also remove the user (NAME only).")
@click.pass_context
def revoke(ctx: click.Context, ref: str, delete: bool) -> None:
    """Revoke one key (KEY_ID) or every key of a user (NAME). Their data stays."""
    with _accounts(ctx) as accounts:
        revoked = accounts.revoke(ref, delete=delete)
    what = ", ".join(revoked) if revoked else "no active key"
    click.echo(f"Revoked {what}" + (f"; removed user {ref}" if delete else "") + ".")
