"""``dialoop serve`` as a user starts it: a subprocess, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.cli import free_port, serve

pytestmark = pytest.mark.slow


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from /proc: no traffic needed)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found




def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    return err


def test_without_keys_it_listens_on_loopback_only(dialoop_home: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-c", "from dialoop.cli import main; main()", "serve",
         "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "DIALOOP_HOME": str(dialoop_home)})
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "loopback only, not on 0.0.0.0" in refused.stderr
    assert "dialoop users add NAME" in refused.stderr
    port = free_port()
    process = serve(dialoop_home, port)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/api/health").json()["auth"] == "local"
        assert _listening_addresses(port) == {"127.0.0.1"}
        # It consolidates by itself by default (docs/learning.md, "Running by itself").
        auto = httpx.get(f"http://127.0.0.1:{port}/api/learning/status").json()["auto"]
        assert auto == {"on": True, "after": 5, "idle_seconds": 300.0}
    finally:
        err = _stop(process)
    assert "consolidates into an adapter by itself after 5 new lessons or ratings" in err


def test_no_learn_turns_the_background_loop_off(dialoop_home: Path) -> None:
    port = free_port()
    process = serve(dialoop_home, port, "--no-learn")
    try:
        auto = httpx.get(f"http://127.0.0.1:{port}/api/learning/status").json()["auto"]
        assert auto["on"] is False
    finally:
        err = _stop(process)
    assert "consolidation runs only when asked" in err
