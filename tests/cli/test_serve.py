"""``dialoop serve`` refuses to listen beyond loopback without keys (issue 12, low): the
docs say so, and a server moved to 127.0.0.1 behind the user's back is a surprise."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import dialoop.serve.pool
from dialoop.cli import cli
from dialoop.errors import ConfigError


def test_keyless_serve_on_every_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the refusal must come before any model is loaded")

    monkeypatch.setattr(dialoop.serve.pool, "open_engines", no_model)
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        result = CliRunner().invoke(cli, ["serve", "--host", host])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: No API key exists"), lines
        assert "dialoop users add" in lines[0]


def test_allow_host_takes_host_names_only() -> None:
    result = CliRunner().invoke(cli, ["serve", "--allow-host", "http://dialoop.lan:8000"])
    assert isinstance(result.exception, ConfigError)
    assert "serve_allowed_hosts" in str(result.exception)
