"""``dialoop serve`` as a user starts it: a subprocess, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from /proc: no traffic needed)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_without_keys_it_listens_on_loopback_only(dialoop_home: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from dialoop.cli import main; main()", "serve",
         "--host", "0.0.0.0", "--port", str(port), "--engines", "1"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "DIALOOP_HOME": str(dialoop_home)})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert health.json()["auth"] == "local"
        assert _listening_addresses(port) == {"127.0.0.1"}
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "listens on 127.0.0.1 only (not 0.0.0.0)" in err
    assert "dialoop users add NAME" in err
