"""Running the real ``dialoop`` command in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def dialoop(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``dialoop ARGS`` with this test's DIALOOP_HOME; return the finished process."""
    proc = subprocess.run(
        [sys.executable, "-m", "dialoop", *args],
        capture_output=True, text=True, timeout=timeout, env=os.environ.copy(),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dialoop {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def dialoop_json(*args: str) -> Any:
    return json.loads(dialoop(*args).stdout)


def start(*args: str) -> subprocess.Popen[str]:
    """Start ``dialoop ARGS`` with pipes, for interactive tests."""
    return subprocess.Popen(
        [sys.executable, "-u", "-m", "dialoop", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=os.environ.copy(), bufsize=1,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(home: Path, port: int, *options: str) -> subprocess.Popen[str]:
    """Start ``dialoop serve`` (one engine) and wait until it answers /api/health."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from dialoop.cli import main; main()", "serve",
         "--port", str(port), "--engines", "1", *options],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "DIALOOP_HOME": str(home)})
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
            return process
        except httpx.TransportError:
            assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
