"""Who is calling: an API key (``Authorization: Bearer dlp_…``), or nobody in local mode.

Local mode: a server started without any API key listens on 127.0.0.1 only and
treats every request as the configured local user, with that user's role as
:class:`~dialoop.store.accounts.Permissions` gives it (the default local user is an
admin: whoever can reach a loopback port already runs programs on this machine); a
key sent anyway is not looked at. As soon as a
key exists, keys are required, also by a server started in local mode. A server
started with keys, or on another address, always requires them, even if every key
is later revoked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dialoop.errors import NotAuthenticatedError, PermissionDeniedError
from dialoop.store.accounts import Accounts, Caller, Permissions

__all__ = ["Auth", "CallerDep", "NotAuthenticatedError", "current_caller", "require_admin"]


@dataclass(frozen=True)
class Auth:
    """How the app decides who calls."""

    accounts: Accounts
    permissions: Permissions
    local_user: str
    keys_required: bool  # fixed at start: keys were configured, or the host is not loopback

    def identify(self, key: str | None) -> Caller:
        """The caller a request with ``key`` (or none) acts as. Blocking (database, scrypt).

        In local mode a key is not looked at: OpenAI clients insist on sending one.
        """
        if not (self.keys_required or self.accounts.any_active()):
            return Caller(self.local_user, self.permissions.role(self.local_user))
        if not key:
            raise NotAuthenticatedError(
                "This server needs an API key: send it as `Authorization: Bearer <key>`."
            )
        caller = self.accounts.verify(key)
        if caller is None:
            raise NotAuthenticatedError(
                "Incorrect or revoked API key: ask an admin for one (`dialoop users add NAME`)."
            )
        return caller

    @property
    def mode(self) -> str:
        return "keys" if self.keys_required or self.accounts.any_active() else "local"


_bearer = HTTPBearer(auto_error=False, description="An API key from `dialoop users add NAME`.")


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    auth: Auth = request.app.state.auth
    key = credentials.credentials if credentials else request.headers.get("x-api-key")
    return await run_in_threadpool(auth.identify, key)


CallerDep = Annotated[Caller, Depends(current_caller)]


async def require_admin(caller: CallerDep) -> Caller:
    if not caller.is_admin:
        raise PermissionDeniedError(
            f"Only an admin may do this, and {caller.user} is not one."
        )
    return caller
