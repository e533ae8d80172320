"""Every error the server returns has OpenAI's shape, on /v1 and /api alike:

    {"error": {"message": "...", "type": "invalid_request_error", "param": null,
               "code": "context_overflow"}}

``type`` follows OpenAI's names by HTTP status; ``code`` names the dialoop error
(``context_overflow``, ``not_found``, ``server_busy``…) so clients can branch on it.

Odd input is refused as such (400), never met as a 500 halfway through a request:
request models check their text with :func:`storable_text`, ids are bounded by the
routes, and a lone surrogate or an integer too large for the database that still
reaches the database is reported as invalid input.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from dialoop.errors import DialoopError, InvalidInputError
from dialoop.store.models import check_text

__all__ = ["ErrorDetail", "ErrorResponse", "error_payload", "install_error_handlers",
           "storable_text"]

log = logging.getLogger(__name__)

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error",
          413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}
_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


def error_payload(status: int, message: str, *, code: str | None = None,
                  param: str | None = None) -> dict[str, Any]:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": _utf8(message), "type": kind,
                      "param": None if param is None else _utf8(param),
                      "code": code or _CODES.get(status)}}


def dialoop_error_payload(exc: DialoopError) -> tuple[int, dict[str, Any]]:
    return exc.http_status, error_payload(exc.http_status, str(exc), code=_code(exc))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DialoopError)
    async def _dialoop(request: Request, exc: DialoopError) -> JSONResponse:
        status, payload = dialoop_error_payload(exc)
        headers = {"Retry-After": "2"} if status == 503 else None
        if status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse(payload, status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = describe_validation(exc.errors())
        return JSONResponse(error_payload(400, message, code="invalid_request", param=param), 400)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = f"No such endpoint: {request.method} {request.url.path}. See /docs."
        return JSONResponse(error_payload(exc.status_code, message), exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(UnicodeEncodeError)
    @app.exception_handler(OverflowError)
    async def _unstorable_input(request: Request, exc: Exception) -> JSONResponse:
        if (message := _unstorable(exc)) is None:
            return _internal_error(request, exc)
        log.warning("%s %s: %s", request.method, request.url.path, message)
        return JSONResponse(error_payload(400, message, code="invalid_input"), 400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal_error(request, exc)


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A 500 for a bug; its traceback goes to the log."""
    log.error("unexpected error answering %s %s", request.method, request.url.path,
              exc_info=exc)
    return JSONResponse(error_payload(500, "Internal error: the server log has the details.",
                                      code="internal_error"), 500)


def describe_validation(errors: Any) -> tuple[str, str | None]:
    """One line naming each invalid field and what is wrong with it; and the first field."""
    parts, first = [], None
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        name = ".".join(loc) or "body"
        first = first or name
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{name}: {msg}")
    return "Invalid request: " + "; ".join(parts), first


def storable_text(value: Any) -> Any:
    """A pydantic validator: ``value``, unless it is text with a lone surrogate (which no
    database can store; see :func:`~dialoop.store.models.check_text`)."""
    if isinstance(value, str):
        try:
            check_text(value, "The text")
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None
    return value


def _unstorable(exc: Exception) -> str | None:
    """The message for input the database refused (a backstop: models check it first)."""
    if isinstance(exc, UnicodeEncodeError) and "surrogates not allowed" in str(exc):
        return ("The request contains a lone surrogate (half of a UTF-16 pair), which is "
                "not a character: send valid UTF-8 text.")
    if isinstance(exc, OverflowError) and "too large to convert to SQLite" in str(exc):
        return f"A number in the request is too large: ids go up to {2**63 - 1}."
    return None


def _utf8(text: str) -> str:
    """``text`` as valid UTF-8: a message quoting the input may hold a lone surrogate."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _code(exc: DialoopError) -> str:
    """``ContextOverflowError`` -> ``context_overflow``."""
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
