"""The server: an OpenAI-compatible API, dialoop's own API, API keys, and a web page.

``create_app(assistant)`` builds the ASGI app; ``dialoop serve`` runs it under uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dialoop.serve.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `dialoop users …` (which needs only .accounts)
    # does not pay for importing FastAPI and uvicorn.
    if name == "create_app":
        from dialoop.serve.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
