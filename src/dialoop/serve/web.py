"""The web page: plain HTML, CSS and JavaScript shipped in the package (no build step, no CDN).

``/`` is the page; ``/static/…`` its files. The page talks to the same API as any
client: /v1/chat/completions to chat (streamed), /api for sessions, traces and the rest.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC", "install"]

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
