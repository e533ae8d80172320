"""The one exception tree of dialoop.

Every error a user can cause or meet derives from :class:`DialoopError`, and its
message says what happened *and what to do about it*, in one line. The CLI prints
that line and exits non-zero; the server answers with a JSON error whose HTTP
status is the class's ``http_status``.

    DialoopError
    ├── ConfigError            a setting or dialoop.toml is invalid
    │   └── DomainError            a domain or dialogue script file is invalid (file:line)
    ├── InvalidInputError      a request, parameter or argument is invalid
    │   ├── ContextOverflowError   the prompt cannot fit the model's context window
    │   └── RequestTooLargeError   a request is beyond the server's size limits (413)
    ├── NotAuthenticatedError  the request has no valid API key
    ├── NotFoundError          a session, turn or other named thing does not exist
    ├── PermissionDeniedError  the caller may not do this
    ├── ServerBusyError        too many requests are waiting for the engine
    ├── ModelError             the model cannot be found, downloaded or loaded
    │   ├── ModelNotFoundError
    │   └── ModelLoadError
    ├── EngineError            generation failed (remote server down, …)
    ├── ToolError              a tool could not do its job; the message is for the user
    └── StoreError             the database cannot be used
        └── DatabaseLockedError
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ContextOverflowError",
    "DatabaseLockedError",
    "DialoopError",
    "DomainError",
    "EngineError",
    "InvalidInputError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NotAuthenticatedError",
    "NotFoundError",
    "PermissionDeniedError",
    "RequestTooLargeError",
    "ServerBusyError",
    "StoreError",
    "ToolError",
]


class DialoopError(Exception):
    """Base of every error dialoop raises on purpose."""

    http_status = 500


class ConfigError(DialoopError):
    """A setting is invalid; the message names the setting and the fix."""

    http_status = 500


class DomainError(ConfigError):
    """A domain or script file is invalid; the message names the file, line and problem."""


class InvalidInputError(DialoopError):
    """Input from the user or a client is invalid; nothing was changed."""

    http_status = 400


class ContextOverflowError(InvalidInputError):
    """The prompt cannot be made to fit the model's context window."""


class RequestTooLargeError(InvalidInputError):
    """A request is larger than the server accepts (too much text); nothing was changed."""

    http_status = 413


class NotFoundError(DialoopError):
    """The named session, turn, lesson or adapter does not exist (for this user)."""

    http_status = 404


class NotAuthenticatedError(DialoopError):
    """The request has no valid API key."""

    http_status = 401


class ServerBusyError(DialoopError):
    """Too many requests are waiting for the engine; try again shortly."""

    http_status = 503


class PermissionDeniedError(DialoopError):
    """The caller is not allowed to do this."""

    http_status = 403


class ModelError(DialoopError):
    """The model cannot be used."""

    http_status = 500


class ModelNotFoundError(ModelError):
    """The model spec names nothing that exists (or can be downloaded now)."""


class ModelLoadError(ModelError):
    """The model file exists but cannot be loaded (corrupt, wrong format, …)."""


class EngineError(DialoopError):
    """Generation failed for a reason outside the caller's input."""

    http_status = 502


class ToolError(DialoopError):
    """Raised by a tool to tell the user, in one line, why it could not do its job."""

    http_status = 422


class StoreError(DialoopError):
    """The database cannot be used."""

    http_status = 500


class DatabaseLockedError(StoreError):
    """Another process holds the database's write lock for too long."""

    http_status = 503
