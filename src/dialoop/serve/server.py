"""Running an app under uvicorn: in the foreground (``dialoop serve``) or on a thread.

The thread form is what tests and ``benchmarks/bench_server.py`` use: a real server
on a real loopback port, stopped cleanly when the block ends.

Stopping (Ctrl-C, SIGTERM, the end of the block) is prompt: the moment the server is
told to stop, every answer being written stops after its next token and is stored
marked cancelled (a stream still ends properly), and answers waiting for an engine
get a 503. Only then does uvicorn wait, at most ``_GRACE_SECONDS``, for the
responses to end, and the app's shutdown waits a bounded time for the engines.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

__all__ = ["RunningServer", "background_server", "is_loopback", "run_server"]

_GRACE_SECONDS = 5  # open responses get this long to end once their answers are stopped
_STARTUP_FAILURE = 3  # uvicorn's exit code when it cannot start (the port is taken, say)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def run_server(app: FastAPI, host: str, port: int, *, log_level: str = "warning") -> None:
    """Serve until Ctrl-C (or SIGTERM)."""
    server = _Server(_config(app, host, port, log_level), app)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C, raised again once stopped
        server.run()
    if not server.started:  # uvicorn has logged why
        raise SystemExit(_STARTUP_FAILURE)


def _config(app: FastAPI, host: str, port: int, log_level: str) -> uvicorn.Config:
    """uvicorn's settings for ``app``.

    uvicorn believes ``X-Forwarded-For`` from 127.0.0.1 by default, so that any local
    client could claim any address, and the failed-key limit per address would limit
    nothing. Forwarded headers are believed only from the ``serve_trusted_proxies``
    setting's addresses (none by default).
    """
    assistant = getattr(app.state, "assistant", None)
    trusted = list(assistant.settings.serve_trusted_proxies) if assistant is not None else []
    return uvicorn.Config(app, host=host, port=port, log_level=log_level,
                          timeout_graceful_shutdown=_GRACE_SECONDS,
                          proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None)


class _Server(uvicorn.Server):
    """uvicorn's server, which stops the app's answers as soon as it begins to shut down.

    Without this, uvicorn would first wait the whole grace period for answers that can
    run for minutes, then cut their connections.
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        scheduler = getattr(self._app.state, "scheduler", None)
        if scheduler is not None:
            scheduler.stop_all()
        await super().shutdown(sockets)


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextlib.contextmanager
def background_server(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 30.0
) -> Iterator[RunningServer]:
    """Run ``app`` on a thread for the duration of the block (``port=0``: a free port)."""
    server = _Server(_config(app, host, port, "warning"), app)
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
