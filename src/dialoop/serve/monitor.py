"""The native API, sentiment monitoring (``/api/monitor``): items in, series and alerts out.

Everything acts for the caller only: another user's items, series, alerts and heads do
not exist as far as the caller can tell (an item of theirs is 404, like a wrong id).
The monitor's config is ``$DIALOOP_HOME/monitor.yaml`` (see ``dialoop monitor``), read
when the app is created. Labelling runs the sentence encoder in a worker thread.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from dialoop.engine.embedding import default_embedder
from dialoop.monitor import Monitor, item_from, load_config
from dialoop.monitor.read import MAX_TEXT_CHARS
from dialoop.serve.auth import CallerDep
from dialoop.serve.httperrors import ErrorResponse, storable_text
from dialoop.store.models import MAX_ID

__all__ = ["CONFIG_FILE", "MAX_ITEMS", "install"]

CONFIG_FILE = "monitor.yaml"
MAX_ITEMS = 1_000  # per request: one request, one transaction per 256

router = APIRouter(prefix="/api/monitor", tags=["monitor"], responses={
    "4XX": {"model": ErrorResponse, "description": "Invalid input, unknown, or not yours."},
})
_STORABLE = BeforeValidator(storable_text)
Sentiment = Literal["negative", "neutral", "positive"]
TopicName = Annotated[str, Field(min_length=1, max_length=100), _STORABLE]


class MonitorItemIn(BaseModel):
    """One text; any other field (label, an id of yours) is kept with the item."""

    model_config = ConfigDict(extra="allow")
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), _STORABLE]
    time: str | float | None = Field(None, description="ISO 8601 (no zone: UTC) or seconds "
                                                       "since 1970; default: now.")
    source: Annotated[str, Field(max_length=200), _STORABLE] | None = None


class MonitorItemsIn(BaseModel):
    items: list[MonitorItemIn] = Field(min_length=1, max_length=MAX_ITEMS)


class MonitorAlertOut(BaseModel):
    id: int
    rule: str
    kind: str
    topic: str
    bucket: datetime
    value: float
    message: str
    created_at: datetime


class MonitorIngestOut(BaseModel):
    ingested: int
    ids: list[int]
    alerts: list[MonitorAlertOut] = Field(description="Alerts these items made fire.")
    by_topic: dict[str, int]
    by_sentiment: dict[str, int]
    seconds: float


class MonitorItemOut(BaseModel):
    id: int
    text: str
    source: str | None
    time: datetime
    topic: str
    sentiment: str
    confidence: float
    head_version: int
    corrected: bool
    meta: dict[str, Any]


class MonitorPointOut(BaseModel):
    bucket: datetime
    negative: int
    neutral: int
    positive: int
    total: int


class MonitorSeriesOut(BaseModel):
    bucket_seconds: int
    topics: dict[str, list[MonitorPointOut]]


class MonitorCorrectionIn(BaseModel):
    item_id: int = Field(ge=1, le=MAX_ID)
    sentiment: Sentiment | None = None
    topic: TopicName | None = None


class MonitorCorrectionOut(MonitorItemOut):
    was: dict[str, str]


def _monitor(request: Request) -> Monitor:
    return request.app.state.monitor  # type: ignore[no-any-return]


@router.post("/items", response_model=MonitorIngestOut, status_code=201,
             summary="Label, count and store items; alerts that fire are returned")
async def post_items(request: Request, caller: CallerDep, body: MonitorItemsIn) -> Any:
    items = [item_from(i.model_dump(exclude_none=True), where=f"items[{n}]")
             for n, i in enumerate(body.items)]
    result = await run_in_threadpool(_monitor(request).ingest, items, user=caller.user)
    return result.to_dict()


@router.get("/items", response_model=list[MonitorItemOut],
            summary="Your latest items, newest first")
async def get_items(request: Request, caller: CallerDep,
                    topic: Annotated[str | None, Query(max_length=100)] = None,
                    sentiment: Sentiment | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> Any:
    return await run_in_threadpool(_monitor(request).items, user=caller.user, topic=topic,
                                   sentiment=sentiment, limit=limit)


@router.get("/series", response_model=MonitorSeriesOut,
            summary="Per topic: items per sentiment per time bucket")
async def get_series(request: Request, caller: CallerDep,
                     topic: Annotated[str | None, Query(max_length=100)] = None,
                     since: datetime | None = None, until: datetime | None = None) -> Any:
    mon = _monitor(request)
    topics = await run_in_threadpool(mon.series, user=caller.user, topic=topic,
                                     since=_aware(since), until=_aware(until))
    return {"bucket_seconds": mon.config.bucket_seconds, "topics": topics}


@router.get("/alerts", response_model=list[MonitorAlertOut],
            summary="Your alerts, the latest first")
async def get_alerts(request: Request, caller: CallerDep,
                     topic: Annotated[str | None, Query(max_length=100)] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    return await run_in_threadpool(_monitor(request).alerts, user=caller.user, topic=topic,
                                   limit=limit)


@router.post("/corrections", response_model=MonitorCorrectionOut, status_code=201,
             summary="Correct an item's sentiment and/or topic")
async def post_correction(request: Request, caller: CallerDep, body: MonitorCorrectionIn) -> Any:
    return await run_in_threadpool(_monitor(request).correct, body.item_id, user=caller.user,
                                   sentiment=body.sentiment, topic=body.topic)


@router.post("/train", summary="Retrain your sentiment head from your corrections (gated)")
async def post_train(request: Request, caller: CallerDep) -> dict[str, Any]:
    return await run_in_threadpool(_monitor(request).train, user=caller.user)


def _aware(when: datetime | None) -> datetime | None:
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def install(app: FastAPI) -> None:
    parts = app.state.parts
    path = parts.settings.home / CONFIG_FILE
    app.state.monitor = Monitor(parts.db, default_embedder(),
                                load_config(path if path.is_file() else None))
    app.include_router(router)
    app.state.features.update(monitor=True)
