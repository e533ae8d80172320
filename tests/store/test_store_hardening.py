"""The database is private, readable while another process writes, and a broken file is one
clear line."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialoop.cli import cli, main
from dialoop.config import load_settings
from dialoop.dialogue.session import Sessions
from dialoop.store import open_database


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common umask 022, under which files are created readable by everyone."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_home_and_database_are_private(dialoop_home: Path, usual_umask: None) -> None:
    settings = load_settings()
    db = open_database(settings.resolved_database_url)
    try:
        Sessions(db).create("ann", name="trip")
        with db.read():  # a connection is open, so the -wal and -shm files exist
            files = {p.name: _mode(p) for p in dialoop_home.iterdir()}
    finally:
        db.close()
    assert _mode(dialoop_home) == 0o700
    assert files == {"dialoop.db": 0o600, "dialoop.db-wal": 0o600, "dialoop.db-shm": 0o600}


def test_a_database_elsewhere_gets_a_private_new_folder(tmp_path: Path, usual_umask: None) -> None:
    path = tmp_path / "data" / "x.db"
    open_database(f"sqlite:///{path}").close()
    assert (_mode(path.parent), _mode(path)) == (0o700, 0o600)


def test_an_existing_home_keeps_its_mode_and_a_shared_database_is_pointed_out(
        dialoop_home: Path, usual_umask: None, caplog: pytest.LogCaptureFixture) -> None:
    dialoop_home.mkdir(mode=0o755)
    path = dialoop_home / "dialoop.db"
    sqlite3.connect(path).close()  # as an older dialoop left it: 0644
    with caplog.at_level(logging.WARNING, logger="dialoop.store"):
        open_database(load_settings().resolved_database_url).close()
    assert (_mode(dialoop_home), _mode(path)) == (0o755, 0o644)  # the owner's choice
    assert f"chmod 600 {path}" in caplog.text
    path.chmod(0o600)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dialoop.store"):
        open_database(load_settings().resolved_database_url).close()
    assert caplog.text == ""


@pytest.fixture
def writer_holds_the_lock(dialoop_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A database with one session, whose write lock another connection holds throughout."""
    monkeypatch.setenv("DIALOOP_DB_TIMEOUT", "0.3")
    db = open_database(load_settings().resolved_database_url)
    Sessions(db).create("local", name="trip")
    db.close()
    other = sqlite3.connect(dialoop_home / "dialoop.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a long write transaction, e.g. a running import
    other.execute("INSERT INTO adapter_heads (name, updated_at) VALUES ('x', '2024-01-01')")
    yield
    other.execute("ROLLBACK")
    other.close()


@pytest.mark.parametrize("command", [
    "sessions list", "sessions show trip", "sessions export --all", "kg stats", "kg export",
    "learn status", "learn lessons", "learn history", "users list",
])
def test_read_only_commands_work_while_another_process_writes(
        writer_holds_the_lock: None, command: str) -> None:
    result = CliRunner().invoke(cli, command.split())
    assert result.exit_code == 0, f"{command}: {result.exception!r}\n{result.output}"
    if command.startswith("sessions"):
        assert "trip" in result.output  # what was committed before the lock was taken


def _broken(home: Path, how: str) -> Path:
    home.mkdir()
    path = home / "dialoop.db"
    if how == "random bytes":
        path.write_bytes(os.urandom(4096))
    else:  # a real database cut short, as by a full disk or a bad copy
        db = open_database(f"sqlite:///{path}")
        Sessions(db).create("local", name="trip")
        db.close()
        path.write_bytes(path.read_bytes()[:10_000])
    return path


def _assert_one_clear_line(code: int | str | None, out: str, err: str, path: Path) -> None:
    lines = (out + err).strip().splitlines()
    assert code == 1
    assert len(lines) < 5, "\n".join(lines)
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert f"{path} is not a valid dialoop database" in errors[0]
    assert "Move it aside" in errors[0]


@pytest.mark.parametrize("how", ["random bytes", "truncated"])
@pytest.mark.parametrize("command", ["sessions list", "kg stats", "serve --port 0"])
def test_a_broken_database_is_one_clear_line(dialoop_home: Path, how: str, command: str,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = _broken(dialoop_home, how)
    monkeypatch.setattr(sys, "argv", ["dialoop", *command.split()])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    _assert_one_clear_line(exited.value.code, out, err, path)


def test_a_broken_database_is_one_clear_line_in_a_real_process(dialoop_home: Path) -> None:
    path = _broken(dialoop_home, "random bytes")
    proc = subprocess.run([sys.executable, "-m", "dialoop", "sessions", "list"],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    _assert_one_clear_line(proc.returncode, proc.stdout, proc.stderr, path)
