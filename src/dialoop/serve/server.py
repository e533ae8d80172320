"""Running an app under uvicorn: in the foreground (``dialoop serve``) or on a thread.

The thread form is what tests and ``benchmarks/bench_server.py`` use: a real server
on a real loopback port, stopped cleanly when the block ends.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

__all__ = ["RunningServer", "background_server", "is_loopback", "run_server"]

_GRACE_SECONDS = 5  # open streams get this long to finish at shutdown


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def run_server(app: FastAPI, host: str, port: int, *, log_level: str = "warning") -> None:
    """Serve until Ctrl-C (or SIGTERM)."""
    uvicorn.run(app, host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=_GRACE_SECONDS)


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def background_server(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 30.0
) -> Iterator[RunningServer]:
    """Run ``app`` on a thread for the duration of the block (``port=0``: a free port)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=_GRACE_SECONDS)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dialoop-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningServer(host, bound)
    finally:
        server.should_exit = True
        thread.join(timeout=_GRACE_SECONDS + 10)
