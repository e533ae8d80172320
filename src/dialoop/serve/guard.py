"""Checks at the HTTP edge, before any route runs: the Host, the Origin, the Content-Type.

They exist for the keyless local mode. A server on 127.0.0.1 without keys acts for
its (admin) local user on any request that reaches it, and a web browser lets any
page send requests there:

- **DNS rebinding.** A page on ``evil.example`` points its own name at 127.0.0.1; to
  the browser the server is then same-origin, so the page can read and write. Only
  the ``Host`` header (``evil.example``) gives it away, so names are refused unless
  they are listed. IP addresses and ``localhost`` are always allowed: an attacker
  cannot rebind them.
- **Cross-site writes.** Any page can POST to ``http://127.0.0.1:8000`` without the
  browser asking the server first (a "simple" request: a form, or a ``text/plain``
  body) and without reading the answer. Browsers say who sent it: ``Origin`` (on
  every POST, PUT, PATCH and DELETE) and ``Sec-Fetch-Site``. A state-changing request
  from another origin is refused; one with no ``Origin`` (curl, the OpenAI client, any
  program that is not a browser) is allowed.
- **Content types.** As a second line behind the Origin check, an endpoint that
  reads JSON takes only ``application/json``, which a page cannot send cross-site
  without a CORS preflight (and this server answers none). The raw-body endpoints
  (a file import) refuse the three types a form can send instead.

A keyed server is not open to the first two (a page has no key to send), but the
same checks apply: one behaviour is easier to reason about than two.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Collection, Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from dialoop.serve.httperrors import error_payload

__all__ = ["ANY_HOST", "LOOPBACK_NAMES", "HttpGuard", "names_for_bind"]

ANY_HOST = "*"
LOOPBACK_NAMES = ("localhost",)  # loopback IP addresses are allowed as every IP address is
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The content types an HTML form (or a fetch without a preflight) can send.
_SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded",
                           "multipart/form-data"})
_FOREIGN_FETCH = frozenset({"cross-site", "same-site"})


def names_for_bind(host: str) -> list[str]:
    """The host names a server bound to ``host`` answers to besides IP addresses and
    localhost: the name it was bound to, or (bound to every address) this machine's names.
    """
    if host in _WILDCARDS:
        return sorted({n.lower() for n in (socket.gethostname(), socket.getfqdn()) if n})
    return [] if _is_ip(host) else [host.lower()]


class HttpGuard:
    """ASGI middleware: refuse unknown Host names (421), state-changing requests from
    another origin (403) and bodies of the wrong content type (415).

    ``allowed_hosts`` are names allowed besides IP addresses and ``localhost``; ``"*"``
    allows any. ``raw_body_paths`` take a file as the body, not JSON; ``form_paths`` take a
    file upload (multipart/form-data, which a form can send: the Origin check above is
    what keeps other sites out of those).
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = (),
                 raw_body_paths: Collection[str] = (),
                 form_paths: Collection[str] = ()) -> None:
        self.app = app
        self.names = frozenset(h.lower().rstrip(".") for h in allowed_hosts)
        self.raw_body_paths = raw_body_paths
        self.form_paths = form_paths  # file uploads (audio): multipart/form-data only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan; the server has no websocket routes
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope["method"], scope["path"], headers)
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await _answer(send, *refusal)

    def refusal(self, method: str, path: str,
                headers: dict[str, str]) -> tuple[int, str, str] | None:
        """(status, code, message) if the request must be refused, else None."""
        host = headers.get("host")
        if host is not None and not self.host_allowed(_host_name(host)):
            return (421, "host_not_allowed",
                    f"This server does not answer to the host name {host!r}. If that name is "
                    "really this server, allow it: `dialoop serve --allow-host NAME` or the "
                    "serve_allowed_hosts setting.")
        if method not in _STATE_CHANGING:
            return None
        origin = headers.get("origin")
        own = origin is not None and self._own_origin(origin, host)
        if (origin is not None and not own) or (
                origin is None and headers.get("sec-fetch-site") in _FOREIGN_FETCH):
            return (403, "cross_origin",
                    f"{method} from another web site ({origin or 'a foreign page'}) is refused: "
                    "only this server's own page, or a program that sends no Origin, may "
                    "change things here.")
        if not _has_body(headers):
            return None
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if path in self.raw_body_paths:
            if kind in _SIMPLE_TYPES:
                return (415, "unsupported_media_type",
                        f"Send the file with Content-Type: application/octet-stream (or its "
                        f"own type, such as text/csv), not {kind}, a type any web page can "
                        "send (curl: -H 'Content-Type: application/octet-stream').")
        elif path in self.form_paths:
            if kind != "multipart/form-data":
                return (415, "unsupported_media_type",
                        f"Upload the file as multipart/form-data, not {kind or 'none'}.")
        elif kind != "application/json" and not kind.endswith("+json"):
            return (415, "unsupported_media_type",
                    f"This endpoint reads JSON: send Content-Type: application/json, not "
                    f"{kind or 'none'}.")
        return None

    def host_allowed(self, name: str | None) -> bool:
        if ANY_HOST in self.names:
            return True
        if name is None:
            return False
        return _is_ip(name) or name in LOOPBACK_NAMES or name in self.names

    def _own_origin(self, origin: str, host: str | None) -> bool:
        """``origin`` is this server's: the page was loaded from the Host this request
        names (or, behind a proxy that rewrites Host, from a listed name)."""
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (sandboxed frames, file://) and anything odd
        if host is not None and parts.netloc.lower() == host.lower():
            return True
        return (parts.hostname or "") in self.names - {ANY_HOST}


def _host_name(host: str) -> str | None:
    """The name in a Host header (``[::1]:8000`` -> ``::1``), or None if it is malformed."""
    try:
        parts = urlsplit(f"//{host}")
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.hostname is None or any(c in host for c in "/?#@"):
        return None
    return parts.hostname.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _has_body(headers: dict[str, str]) -> bool:
    length = headers.get("content-length", "0").strip()
    return "transfer-encoding" in headers or not (length.isdigit() and int(length) == 0)


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps(error_payload(status, message, code=code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
