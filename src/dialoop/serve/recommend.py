"""The native API, recommendation (``/api/recommend``): the catalogue, your interactions,
your list.

Interactions and lists are the caller's own: nobody reads or writes another user's
history through it, and a list's reasons name only the caller's own items. Importing
the shared catalogue, recording interactions for many users and training are for
admins. Embedding and training run in a worker thread.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from dialoop.recommend import EVENT_KINDS, EventIn, Item, Recommender
from dialoop.serve.auth import CallerDep, require_admin
from dialoop.serve.httperrors import ErrorResponse, storable_text

__all__ = ["MAX_EVENTS", "MAX_ITEMS", "install"]

MAX_ITEMS = 5_000  # per request
MAX_EVENTS = 5_000

router = APIRouter(prefix="/api/recommend", tags=["recommend"], responses={
    "4XX": {"model": ErrorResponse, "description": "Invalid input, unknown, or not allowed."},
})
_STORABLE = BeforeValidator(storable_text)
Key = Annotated[str, Field(min_length=1, max_length=200), _STORABLE]


class CatalogueItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Key
    title: Annotated[str, Field(min_length=1, max_length=300), _STORABLE]
    text: Annotated[str, Field(max_length=4000), _STORABLE] = ""
    attributes: dict[Key, list[Annotated[str, Field(max_length=200), _STORABLE]]] = \
        Field(default_factory=dict)


class CatalogueIn(BaseModel):
    items: list[CatalogueItemIn] = Field(min_length=1, max_length=MAX_ITEMS)


class EventBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: Key
    kind: str = Field(description=f"One of {', '.join(EVENT_KINDS)}.")
    value: float | None = Field(None, description="A rating's stars, 0 to 5.")
    time: datetime | None = Field(None, description="ISO 8601; default: now.")
    user: Key | None = Field(None, description="Admins only: record for this user.")


class EventsIn(BaseModel):
    events: list[EventBody] = Field(min_length=1, max_length=MAX_EVENTS)


class RecommendationOut(BaseModel):
    item: str
    title: str
    score: float
    reason: str
    because: str | None
    path: list[str] = Field(description="Liked item, relation, value, relation, item.")
    exploring: bool


class RecommendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(10, ge=1, le=100)
    explore: float | None = Field(None, ge=0.0, le=0.5,
                                  description="Share of exploring slots; default: the setting.")
    record_shown: bool = Field(True, description="Store the list as impressions.")


def _rec(request: Request) -> Recommender:
    return request.app.state.parts.recommender  # type: ignore[no-any-return]


@router.post("/items", status_code=201, dependencies=[Depends(require_admin)],
             summary="Add or update catalogue items (admin)")
async def post_items(request: Request, body: CatalogueIn) -> dict[str, int]:
    items = [Item(i.id, i.title, i.text, dict(i.attributes)) for i in body.items]
    return await run_in_threadpool(_rec(request).import_items, items)


@router.get("/items", summary="The catalogue")
async def get_items(request: Request, _: CallerDep, search: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
    return await run_in_threadpool(_rec(request).items, limit=limit, search=search)


@router.post("/events", status_code=201, summary="Record your interactions (admins: anyone's)")
async def post_events(request: Request, caller: CallerDep, body: EventsIn
                      ) -> list[dict[str, Any]]:
    if any(e.user not in (None, caller.user) for e in body.events):
        await require_admin(caller)
    events = [EventIn(e.user or caller.user, e.item, e.kind, e.value,
                      e.time.replace(tzinfo=e.time.tzinfo or UTC) if e.time else None)
              for e in body.events]
    return await run_in_threadpool(_rec(request).record_many, events)


@router.get("/events", summary="Your interactions, newest first")
async def get_events(request: Request, caller: CallerDep,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 100
                     ) -> list[dict[str, Any]]:
    return await run_in_threadpool(_rec(request).history, caller.user, limit=limit)


@router.delete("/events", summary="Forget your interactions (with one item, or all)")
async def delete_events(request: Request, caller: CallerDep,
                        item: str | None = None) -> dict[str, int]:
    return {"deleted": await run_in_threadpool(_rec(request).forget, caller.user, item)}


@router.post("", response_model=list[RecommendationOut], summary="Your recommendations")
async def post_recommend(request: Request, caller: CallerDep, body: RecommendIn) -> Any:
    found = await run_in_threadpool(_rec(request).recommend, caller.user, k=body.k,
                                    explore=body.explore, record_shown=body.record_shown)
    return [r.to_dict() for r in found]


@router.post("/train", dependencies=[Depends(require_admin)],
             summary="Learn the collaborative part from everyone's interactions (admin)")
async def post_train(request: Request) -> dict[str, Any]:
    return await run_in_threadpool(_rec(request).train)


@router.get("/models", summary="The trained models and which serves")
async def get_models(request: Request, _: CallerDep) -> list[dict[str, Any]]:
    return await run_in_threadpool(_rec(request).models)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.state.features.update(recommend=True)
