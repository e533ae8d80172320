"""``dialoop users add|list|revoke``."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dialoop.cli import cli


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_add_list_revoke() -> None:
    key = _run("users", "add", "ann").strip()
    assert key.startswith("dlp_")
    _run("users", "add", "root", "--role", "admin")
    listed = {u["user"]: u for u in json.loads(_run("users", "list", "--json"))}
    assert listed["ann"]["role"] == "user" and listed["root"]["role"] == "admin"
    key_id = listed["ann"]["keys"][0]["id"]
    assert key_id in key
    assert key.split("_", 2)[2] not in _run("users", "list")  # the secret is never shown again
    assert f"Revoked {key_id}" in _run("users", "revoke", "ann")
    listed = {u["user"]: u for u in json.loads(_run("users", "list", "--json"))}
    assert listed["ann"]["keys"][0]["revoked_at"] is not None


def test_bad_name_is_one_clear_error() -> None:
    result = CliRunner().invoke(cli, ["users", "add", "ann smith"])
    assert result.exit_code == 1
    assert "Invalid user name" in str(result.exception)
