"""The native API, part one: health, metrics, the caller, sessions and turns with traces,
and ``POST /api/chat`` (:mod:`.chat`: a message, typed or spoken, with images).

Everything here acts for the caller only: another user's session or turn does not
exist as far as the caller can tell (404, the same as a wrong id). A session
reference that no session could have (control characters, over 200 characters) and
an id outside 1..2^63-1 are invalid requests (400), refused before any lookup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from dialoop import __version__
from dialoop.assistant import Assistant, Parts
from dialoop.dialogue.session import check_session_name, turn_to_dict
from dialoop.dialogue.summary import summariser, summarize_session
from dialoop.serve import chat
from dialoop.serve.auth import Auth, CallerDep, require_admin
from dialoop.serve.httperrors import ErrorResponse
from dialoop.serve.metrics import CONTENT_TYPE, Metrics
from dialoop.serve.scheduler import Scheduler
from dialoop.store.accounts import Caller
from dialoop.store.models import MAX_ID, ChatSession

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "Invalid request, bad key, not allowed, "
            "or not found (for you)."},
}
router = APIRouter(prefix="/api", responses=_ERRORS)
router.include_router(chat.router)  # POST /api/chat: a message (typed, spoken, with images)
TurnId = Annotated[int, Path(ge=1, le=MAX_ID, description="A turn's id (dialoop.turn_id).")]
SessionRef = Annotated[str, Path(min_length=1, max_length=200,
                                 description="A session's name or id.")]


# -- models ----------------------------------------------------------------------------------

class AnswersOut(BaseModel):
    running: int
    waiting: int
    capacity: int


class HealthOut(BaseModel):
    status: str
    version: str
    model: str
    engine: str
    engines: int = Field(description="Answers that can be generated at once.")
    answers: AnswersOut
    auth: str = Field(description="'keys' (API keys required) or 'local' (127.0.0.1, no keys).")
    features: dict[str, bool] = Field(description="Which parts of the native API are on.")


class MeOut(BaseModel):
    user: str
    role: str
    auth: str


class SessionSummaryOut(BaseModel):
    id: str
    name: str | None
    title: str | None
    label: str
    status: str
    turns: int
    created_at: datetime
    updated_at: datetime


class TurnOut(BaseModel):
    id: int
    session_id: str
    position: int
    role: str
    content: str
    status: str
    created_at: datetime
    model: str | None
    adapter: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    seconds: float | None
    trace: dict[str, Any] | None = Field(
        description="What shaped the answer: context, evidence, parameters, dialogue steps.")


class SessionOut(BaseModel):
    id: str
    name: str | None
    title: str | None
    user: str
    system_prompt: str | None
    model: str | None
    created_at: datetime
    turns: list[TurnOut]


class DeletedOut(BaseModel):
    deleted: str


class SummaryOut(BaseModel):
    session_id: str
    id: int = Field(description="Cite it as summary:<id> (as turn traces do).")
    source: str
    kind: str = Field(description="'model' or 'extractive' (the context_summarizer setting).")
    turns: list[int] = Field(description="The user turns it covers: [1, last].")
    messages: int = Field(description="Messages of the session it stands for.")
    text: str
    seconds: float


# -- health, metrics, caller ---------------------------------------------------------------------

@router.get("/health", response_model=HealthOut, tags=["server"],
            summary="Whether the server is up, and what it runs (no key needed)")
async def health(request: Request) -> dict[str, Any]:
    state = request.app.state
    assistant: Assistant = state.assistant
    scheduler: Scheduler = state.scheduler
    auth: Auth = state.auth
    return {
        "status": "ok", "version": __version__, "model": assistant.engine.name,
        "engine": assistant.engine.kind, "engines": scheduler.slots,
        "answers": {"running": scheduler.running, "waiting": scheduler.waiting,
                    "capacity": scheduler.capacity},
        "auth": await run_in_threadpool(lambda: auth.mode),
        "features": state.features,
    }


@router.get("/metrics", tags=["server"], dependencies=[Depends(require_admin)],
            summary="Prometheus metrics (text format; admin)",
            responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Metrics."}})
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(await run_in_threadpool(registry.render), media_type=CONTENT_TYPE)


@router.get("/me", response_model=MeOut, tags=["server"], summary="Who the key belongs to")
async def me(request: Request, caller: CallerDep) -> dict[str, Any]:
    return {"user": caller.user, "role": caller.role, "auth": request.app.state.auth.mode}


# -- sessions and turns -----------------------------------------------------------------------

@router.get("/sessions", response_model=list[SessionSummaryOut], tags=["sessions"],
            summary="Your sessions, most recently used first")
async def list_sessions(
    request: Request, caller: CallerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[dict[str, Any]]:
    parts: Parts = request.app.state.parts
    items = await run_in_threadpool(parts.sessions.list, caller.user, limit=limit)
    return [_summary(i.session, i.turns) for i in items]


@router.get("/sessions/{ref}", response_model=SessionOut, tags=["sessions"],
            summary="One of your sessions (by name or id) with all its turns and traces")
async def get_session(request: Request, caller: CallerDep, ref: SessionRef) -> dict[str, Any]:
    return await run_in_threadpool(_export, request.app.state.parts, ref, caller)


@router.get("/sessions/{ref}/export", response_model=SessionOut, tags=["sessions"],
            summary="The same, as a JSON file to download")
async def export_session(request: Request, caller: CallerDep, ref: SessionRef) -> JSONResponse:
    data = await run_in_threadpool(_export, request.app.state.parts, ref, caller)
    filename = f"dialoop-session-{data['id']}.json"
    return JSONResponse(SessionOut.model_validate(data).model_dump(mode="json"),
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.delete("/sessions/{ref}", response_model=DeletedOut, tags=["sessions"],
               summary="Delete one of your sessions and all its turns")
async def delete_session(request: Request, caller: CallerDep, ref: SessionRef) -> dict[str, Any]:
    parts: Parts = request.app.state.parts
    session = await run_in_threadpool(parts.sessions.delete, check_session_name(ref), caller.user)
    return {"deleted": session.id}


@router.post("/sessions/{ref}/summary", response_model=SummaryOut, tags=["sessions"],
             summary="Summarise one of your sessions (stored; made once for the same turns)")
async def summarize(request: Request, caller: CallerDep, ref: SessionRef) -> dict[str, Any]:
    assistant: Assistant = request.app.state.assistant
    return await run_in_threadpool(_summarize, assistant, ref, caller)


@router.get("/turns/{turn_id}", response_model=TurnOut, tags=["sessions"],
            summary="One turn of yours, with its trace (why it was answered so)")
async def get_turn(request: Request, caller: CallerDep, turn_id: TurnId) -> dict[str, Any]:
    parts: Parts = request.app.state.parts
    turn = await run_in_threadpool(parts.sessions.turn, turn_id, caller.user)
    return {**turn_to_dict(turn), "session_id": turn.session_id}


def _export(parts: Parts, ref: str, caller: Caller) -> dict[str, Any]:
    data = parts.sessions.export(check_session_name(ref), caller.user)
    for turn in data["turns"]:
        turn["session_id"] = data["id"]
    return data


def _summarize(assistant: Assistant, ref: str, caller: Caller) -> dict[str, Any]:
    parts = assistant.parts
    session = parts.sessions.get(check_session_name(ref), caller.user)  # else 404
    summarise = summariser(parts.settings.context_summarizer, assistant.engine,
                           cache_scope=caller.user)
    made = summarize_session(parts.db, session, summarise)
    return {"session_id": session.id, **made.to_dict()}


def _summary(session: ChatSession, turns: int) -> dict[str, Any]:
    return {"id": session.id, "name": session.name, "title": session.title,
            "label": session.label, "status": session.status, "turns": turns,
            "created_at": session.created_at, "updated_at": session.updated_at}
