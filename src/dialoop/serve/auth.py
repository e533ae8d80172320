"""Who is calling: an API key (``Authorization: Bearer dlp_…``), or nobody in local mode.

Local mode: a server started without any API key listens on 127.0.0.1 only and
treats every request as the configured local user, with that user's role as
:class:`~dialoop.store.accounts.Permissions` gives it (the default local user is an
admin: whoever can reach a loopback port already runs programs on this machine); a
key sent anyway is not looked at. As soon as a key exists, keys are required, also
by a server started in local mode, and they stay required until the server is
restarted without keys: revoking the last key must not hand the server back to
whoever can reach it. A server started with keys, or on another address, always
requires them.

Checking a key the server has not seen costs tens of milliseconds of scrypt (by
design, see :mod:`dialoop.store.accounts`), so guessing is made slow and cannot
crowd out real work:

- a key verified before is recognised by a fast hash (one indexed read, which also
  sees a revocation at once) and never waits behind the checks below;
- an address or a key id with ``MAX_FAILURES`` failed checks in the last
  ``FAILURE_WINDOW`` seconds gets a 429 with ``Retry-After``, without a check;
- checks run one at a time, off the threads of the engines and of the rest of the
  server; when ``MAX_CHECKS_WAITING`` already wait, the next request gets a 429.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from dialoop.errors import NotAuthenticatedError, PermissionDeniedError
from dialoop.store.accounts import Accounts, Caller, Permissions, key_id_of
from dialoop.store.models import utcnow

__all__ = ["FAILURE_WINDOW", "MAX_CHECKS_WAITING", "MAX_FAILURES", "Auth", "CallerDep",
           "FailedAttempts", "NotAuthenticatedError", "current_caller", "require_admin"]

MAX_FAILURES = 10  # failed key checks per address, and per key id, ...
FAILURE_WINDOW = 60.0  # ... within this many seconds; then 429 until the oldest ages out
MAX_CHECKS_WAITING = 8  # unknown keys waiting for their scrypt check; beyond, 429


class FailedAttempts:
    """Recent failed key checks by name (``"client 10.0.0.7"``, ``"key 3fa2…"``).

    Thread-safe. Keeps the last ``limit`` times of at most ``max_tracked`` names, the
    least recently failing forgotten first, so a flood of made-up names is bounded.
    """

    def __init__(self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW, *,
                 max_tracked: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.max_tracked = limit, window, max_tracked
        self._clock = clock
        self._times: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, *names: str) -> float:
        """Seconds until every one of ``names`` may try again (0: now)."""
        now = self._clock()
        with self._lock:
            full = [t for n in names if len(t := self._times.get(n, ())) == self.limit]
        return max([0.0, *(t[0] + self.window - now for t in full)])

    def record(self, *names: str) -> None:
        now = self._clock()
        with self._lock:
            for name in names:
                times = self._times.pop(name, None) or deque(maxlen=self.limit)
                times.append(now)
                self._times[name] = times  # now the most recent
            while len(self._times) > self.max_tracked:
                self._times.popitem(last=False)


class Auth:
    """How the app decides who calls."""

    def __init__(self, accounts: Accounts, permissions: Permissions, local_user: str,
                 keys_required: bool) -> None:
        self.accounts = accounts
        self.permissions = permissions
        self.local_user = local_user
        self.failures = FailedAttempts()
        self._keyed = keys_required  # latches: see keyed
        self._started = utcnow()
        self._checking = anyio.CapacityLimiter(1)  # scrypt checks, one at a time

    @property
    def keyed(self) -> bool:
        """Whether keys are required. Blocking (a database read until it turns true).

        True from the start when keys were configured or the host is not loopback;
        else from the moment any key is active, or was revoked since the start (so was
        active at some time), and from then on until the server stops.
        """
        if not self._keyed and self.accounts.any_active(revoked_since=self._started):
            self._keyed = True
        return self._keyed

    @property
    def mode(self) -> str:
        return "keys" if self.keyed else "local"

    async def identify(self, key: str | None, client: str) -> Caller:
        """The caller a request from address ``client`` with ``key`` (or none) acts as.

        In local mode a key is not looked at: OpenAI clients insist on sending one.
        """
        caller = await run_in_threadpool(self._without_scrypt, key, client)
        if caller is not None:
            return caller
        assert key is not None
        if self._checking.statistics().tasks_waiting >= MAX_CHECKS_WAITING:
            raise _too_many(1.0, "Too many API keys are waiting to be checked")
        return await anyio.to_thread.run_sync(self._check, key, client, limiter=self._checking)

    def _without_scrypt(self, key: str | None, client: str) -> Caller | None:
        """The caller when no scrypt check is needed, else None. Raises when the request
        is refused anyway (no key; too many failures)."""
        if not self.keyed:
            return Caller(self.local_user, self.permissions.role(self.local_user))
        if not key:
            raise NotAuthenticatedError(
                "This server needs an API key: send it as `Authorization: Bearer <key>`."
            )
        caller = self.accounts.verify(key, known_only=True)
        if caller is None:
            self._refuse_if_failing(key, client)
        return caller

    def _check(self, key: str, client: str) -> Caller:
        self._refuse_if_failing(key, client)  # failures may have piled up while waiting
        caller = self.accounts.verify(key)
        if caller is None:
            self.failures.record(*_names(key, client))
            raise NotAuthenticatedError(
                "Incorrect or revoked API key: ask an admin for one (`dialoop users add NAME`)."
            )
        return caller

    def _refuse_if_failing(self, key: str, client: str) -> None:
        wait = self.failures.wait(*_names(key, client))
        if wait > 0:
            raise _too_many(wait, f"Too many failed API key attempts from {client} or with "
                                  "this key id")


def _names(key: str, client: str) -> list[str]:
    key_id = key_id_of(key)
    return [f"client {client}"] + ([f"key {key_id}"] if key_id else [])


def _too_many(wait: float, reason: str) -> HTTPException:
    seconds = max(1, math.ceil(wait))
    return HTTPException(429, f"{reason}: try again in {seconds} s.",
                         headers={"Retry-After": str(seconds)})


_bearer = HTTPBearer(auto_error=False, description="An API key from `dialoop users add NAME`.")


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    auth: Auth = request.app.state.auth
    key = credentials.credentials if credentials else request.headers.get("x-api-key")
    return await auth.identify(key, request.client.host if request.client else "unknown")


CallerDep = Annotated[Caller, Depends(current_caller)]


async def require_admin(caller: CallerDep) -> Caller:
    if not caller.is_admin:
        raise PermissionDeniedError(
            f"Only an admin may do this, and {caller.user} is not one."
        )
    return caller
