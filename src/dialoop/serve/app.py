"""``create_app``: the server, composed from small parts around one assistant.

    from dialoop import open_assistant
    from dialoop.serve import create_app

    app = create_app(open_assistant())   # any ASGI server; `dialoop serve` runs uvicorn

The routes answer through the assistant and read and write through its parts
(``assistant.parts``: sessions, the learning loop, the knowledge base, accounts and
permissions), which they find in ``app.state``.

Parts: the OpenAI-compatible routes (:mod:`.openai`), the native API (:mod:`.api`),
feedback and learning with the task that starts consolidation runs by itself
(:mod:`.learning`), API keys (:mod:`.auth`), the answer scheduler (:mod:`.scheduler`),
metrics (:mod:`.metrics`), the Host, Origin and Content-Type checks (:mod:`.guard`),
the body size limit (:mod:`.limits`) and the web page (:mod:`.web`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi_offline import FastAPIOffline

from dialoop import __version__
from dialoop.assistant import Assistant
from dialoop.engine.batched import BatchedEngine
from dialoop.serve import (
    api,
    audio,
    completions,
    embeddings,
    knowledge,
    learning,
    monitor,
    openai,
    recommend,
    responses,
    web,
)
from dialoop.serve.auth import Auth
from dialoop.serve.guard import HttpGuard
from dialoop.serve.httperrors import install_error_handlers
from dialoop.serve.limits import BodyLimit
from dialoop.serve.metrics import Metrics, MetricsMiddleware
from dialoop.serve.pool import EnginePool
from dialoop.serve.scheduler import Generation, Scheduler

__all__ = ["DEFAULT_MAX_BODY", "create_app"]

DEFAULT_MAX_BODY = 4 * 2**20  # an OpenAI request carries the whole conversation
# The body is a file (import) or JSON or a SPARQL query as application/sparql-query (sparql);
# both still refuse the content types any web page can send.
_RAW_BODY_PATHS = frozenset({"/api/knowledge/import", "/api/knowledge/sparql"})
_DESCRIPTION = """\
dialoop's server: an OpenAI-compatible API under `/v1` and dialoop's own API under `/api`
(sessions, turns and their traces, health, metrics). Send an API key as
`Authorization: Bearer dlp_…` unless the server runs in local mode. Every error has the shape
`{"error": {"message", "type", "param", "code"}}`.
"""


def create_app(
    assistant: Assistant,
    *,
    keys_required: bool = False,
    max_waiting: int = 32,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    allowed_hosts: Sequence[str] | None = None,
) -> FastAPI:
    """The ASGI app serving ``assistant``.

    ``keys_required`` forces API keys even when none exists yet (set it whenever the
    server listens beyond loopback). Up to ``max_waiting`` answers queue for the
    engine(s); more get a 503. ``allowed_hosts`` are the host names the server answers
    to besides IP addresses and localhost (``"*"``: any; default: the
    ``serve_allowed_hosts`` setting), see :mod:`.guard`. The caller keeps ownership of
    ``assistant``.
    """
    engine = assistant.engine  # a pool or a batched engine answers ``size`` at once
    slots = engine.size if isinstance(engine, EnginePool | BatchedEngine) else 1
    scheduler = Scheduler(slots, max_waiting)
    parts = assistant.parts
    metrics = Metrics(scheduler, parts.adapters.heads)
    scheduler.on_finish.append(lambda gen: _observe(metrics, gen))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.auto_learn.start()  # consolidation by itself (learning.AutoLearner)
        yield
        await app.state.auto_learn.stop()
        await run_in_threadpool(scheduler.shutdown)  # answers stop and are stored

    app = FastAPIOffline(
        title="dialoop", version=__version__, description=_DESCRIPTION, lifespan=lifespan,
        static_url="/static-docs",
    )
    app.state.assistant = assistant
    app.state.parts = parts
    app.state.scheduler = scheduler
    app.state.metrics = metrics
    app.state.auth = Auth(parts.accounts, parts.permissions, parts.settings.user, keys_required)
    app.state.started = int(time.time())
    # Which optional parts of the native API are on (the web page asks /api/health).
    app.state.features = {"chat": True, "sessions": True, "feedback": False,
                          "learning": False, "knowledge": False}

    install_error_handlers(app)
    app.include_router(openai.router)
    app.include_router(completions.router)
    app.include_router(responses.router)
    app.include_router(embeddings.router)
    app.include_router(audio.router)
    app.include_router(api.router)
    learning.install(app)
    knowledge.install(app)
    monitor.install(app)
    recommend.install(app)
    web.install(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes,
                       overrides={"/v1/audio/": max(max_body_bytes, audio.MAX_UPLOAD)})
    app.add_middleware(HttpGuard, raw_body_paths=_RAW_BODY_PATHS, form_paths=audio.FORM_PATHS,
                       allowed_hosts=(parts.settings.serve_allowed_hosts
                                      if allowed_hosts is None else allowed_hosts))
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # the outermost: counts refusals
    return app


def _observe(metrics: Metrics, gen: Generation) -> None:
    if gen.reply is not None:
        metrics.observe_reply(gen.reply)
