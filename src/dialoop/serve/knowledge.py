"""The native API, part three: the knowledge graph and documents (``/api/knowledge``).

Every read sees what the caller may see: the global knowledge plus the caller's own
facts. Anyone may add a fact for themselves; only an admin adds facts for everyone or
imports a file (which is global). A fact's id is ``triple:N`` as it is shown; ``N``
alone is accepted too. An imported file's ``filename`` is a plain file name, never a
path.
"""

from __future__ import annotations

import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, BeforeValidator, Field, ValidationError

from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.evidence import Scope
from dialoop.knowledge import KnowledgeBase
from dialoop.knowledge.browse import entity_view, search_entities, stats, triple_dict
from dialoop.knowledge.sparql import MAX_QUERY, MEDIA_TYPES, run_sparql
from dialoop.serve.auth import CallerDep, require_admin
from dialoop.serve.httperrors import ErrorResponse, storable_text
from dialoop.store.accounts import Caller
from dialoop.store.models import MAX_ID

__all__ = ["install"]

router = APIRouter(prefix="/api/knowledge", tags=["knowledge"], responses={
    "4XX": {"model": ErrorResponse, "description": "Invalid input, unknown, or not allowed."},
})
_STORABLE = BeforeValidator(storable_text)  # a lone surrogate: 400 before writing, not 500
Name = Annotated[str, Field(min_length=1, max_length=500), _STORABLE]
TripleId = Annotated[str, PathParam(pattern=r"^(triple:)?[0-9]{1,19}$", examples=["triple:7"],
                                    description="A fact's id: triple:N as shown, or N.")]
_FILE_NAME_BYTES = 200  # well under the 255 bytes most file systems allow


class TripleIn(BaseModel):
    subject: Name
    relation: Name
    object: Annotated[str, Field(min_length=1, max_length=2_000), _STORABLE] = Field(
        description="A number, date or true/false becomes a value; anything else an entity.")
    scope: Literal["user", "global"] = Field("user", description="global: admins only.")


class TripleOut(BaseModel):
    id: str
    subject: str
    relation: str
    object: str
    scope: str
    source: str
    added_by: str
    lesson_id: int | None
    created_at: str


class QueryIn(BaseModel):
    question: Annotated[str, Field(min_length=1, max_length=2_000), _STORABLE]


class QueryOut(BaseModel):
    answer: str | None = Field(description="The graph's answer, or its reason for declining.")
    found: bool
    declined: bool
    evidence: list[dict[str, Any]] = Field(description="Triples and passages, with sources.")


class EntityOut(BaseModel):
    name: str
    names: list[list[str]] = Field(description="[name, kind]: its label and aliases.")
    triples: list[TripleOut]


class ImportOut(BaseModel):
    file: str
    added: int
    existing: int
    names: int


def _kb(request: Request) -> KnowledgeBase:
    return request.app.state.parts.knowledge  # type: ignore[no-any-return]


@router.get("/stats", summary="Count the facts, entities and documents you see")
async def get_stats(request: Request, caller: CallerDep) -> dict[str, Any]:
    return await run_in_threadpool(stats, _kb(request), caller.user)


@router.get("/entities", summary="Entities whose name contains the search text")
async def list_entities(request: Request, caller: CallerDep,
                        search: Annotated[str, Query(min_length=1, max_length=200)],
                        limit: Annotated[int, Query(ge=1, le=100)] = 20
                        ) -> list[dict[str, str | None]]:
    return await run_in_threadpool(search_entities, _kb(request), search, caller.user,
                                   limit=limit)


@router.get("/entities/{name}", response_model=EntityOut,
            summary="An entity's names and every fact about it you may see")
async def get_entity(request: Request, caller: CallerDep, name: str) -> Any:
    names, triples = await run_in_threadpool(entity_view, _kb(request), name, caller.user)
    label = next((n for n, kind in names if kind == "label"), names[0][0] if names else name)
    return {"name": label, "names": names, "triples": [triple_dict(t) for t in triples]}


@router.post("/query", response_model=QueryOut,
             summary="Answer a question from the graph and documents (no model)")
async def query(request: Request, caller: CallerDep, body: QueryIn) -> Any:
    found = await run_in_threadpool(_kb(request).lookup, body.question, user=caller.user)
    return {"answer": found.answer, "found": found.found, "declined": found.declined,
            "evidence": [e.to_dict() for e in found.evidence]}


class SparqlIn(BaseModel):
    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY), _STORABLE]
    format: Literal["json", "csv", "xml", "turtle"] | None = Field(
        None, description="Overrides the Accept header; default json (turtle for CONSTRUCT).")


_SPARQL_DESCRIPTION = (
    "The body is JSON `{\"query\": …}` or the query itself as `application/sparql-query`. "
    "The results format comes from `format`, else from Accept "
    "(application/sparql-results+json, text/csv, application/sparql-results+xml, "
    "text/turtle). Read-only: updates, SERVICE and FROM are refused with 400. Prefixes e:, "
    "r:, rdf:, rdfs:, skos:, xsd: are predeclared.")


@router.post("/sparql", summary="Run a read-only SPARQL query over the facts you see",
             description=_SPARQL_DESCRIPTION,
             response_class=Response, responses={200: {"content": {
                 t: {} for t in MEDIA_TYPES.values()}}})
async def sparql(request: Request, caller: CallerDep) -> Response:
    body = _sparql_body(request.headers.get("content-type", ""), await request.body())
    result = await run_in_threadpool(run_sparql, _kb(request).graph, body.query, caller.user)
    fmt = body.format or _accepted(request.headers.get("accept", ""), result.formats())
    data = await run_in_threadpool(result.serialize, fmt)
    return Response(data, media_type=MEDIA_TYPES[fmt])


def _sparql_body(content_type: str, raw: bytes) -> SparqlIn:
    try:
        if content_type.split(";")[0].strip().lower() == "application/sparql-query":
            return SparqlIn(query=raw.decode("utf-8"))
        return SparqlIn.model_validate_json(raw or b"{}")
    except UnicodeDecodeError:
        raise InvalidInputError("The SPARQL query must be UTF-8 text.") from None
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        raise InvalidInputError(f"Send JSON {{\"query\": \"SELECT …\"}} or the query as "
                                f"application/sparql-query ({where}: {problem['msg']}).") from None


def _accepted(accept: str, offered: tuple[str, ...]) -> str:
    """The first format of ``offered`` the Accept header names; else the first offered."""
    wanted = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    by_type = {MEDIA_TYPES[f]: f for f in offered} | {"application/json": offered[0]}
    return next((by_type[w] for w in wanted if w in by_type), offered[0])


@router.post("/triples", response_model=TripleOut, status_code=201,
             summary="Add a fact (for yourself; scope global: admins)")
async def add_triple(request: Request, caller: CallerDep, body: TripleIn) -> Any:
    scope = Scope.named(body.scope, caller.user)
    await run_in_threadpool(request.app.state.parts.permissions.check_scope, caller.user, scope,
                            "add facts")
    t = await run_in_threadpool(_kb(request).add_fact, body.subject, body.relation, body.object,
                                user=caller.user, scope=scope, source="api")
    if t is None:
        raise InvalidInputError("'label' and 'alias' name an entity; they are not facts to "
                                "cite. Use another relation.")
    return triple_dict(t)


@router.delete("/triples/{triple_id}", status_code=204, summary="Delete one of your facts")
async def delete_triple(request: Request, caller: CallerDep, triple_id: TripleId) -> None:
    number = int(triple_id.removeprefix("triple:"))
    if not 0 < number <= MAX_ID:  # as out of range as a turn or lesson id: invalid
        raise InvalidInputError(f"A fact's id is triple:N or N, with N from 1 to {MAX_ID}.")
    gone = await run_in_threadpool(_kb(request).forget, scope=Scope.of(caller.user),
                                   triple_ids=[number])
    if not gone:  # another user's fact looks exactly like a missing one
        raise NotFoundError(f"You have no fact triple:{number}.")


@router.post("/import", response_model=ImportOut,
             summary="Import a graph file or document for everyone (admin)",
             description="The request body is the file itself; `filename` says its format "
                         "(.csv .jsonl .ttl .nt .jsonld, or .md .txt .html for a document). "
                         "The file is imported whole or not at all.")
async def import_file(request: Request,
                      caller: Annotated[Caller, Depends(require_admin)],
                      filename: Annotated[str, Query(min_length=1, max_length=255)]) -> Any:
    name = _file_name(filename)
    data = await request.body()
    if not data:
        raise InvalidInputError("The request body is empty: send the file's content.")

    def load() -> Any:
        with tempfile.TemporaryDirectory(prefix="dialoop-import-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            return _kb(request).import_file(path, user=caller.user, scope=Scope.everyone())

    result = await run_in_threadpool(load)
    return {"file": name, "added": result.added, "existing": result.existing,
            "names": result.names}


def _file_name(filename: str) -> str:
    """``filename`` if it is a plain file name; a path, ``..`` or odd characters: 400.

    The upload is written under this name in a fresh temporary folder, and the name is
    kept as the facts' source: it must be neither a path nor unprintable.
    """
    name = filename.strip()
    if (not name or name in (".", "..") or re.search(r"[/\\]", name)
            or any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in name)
            or len(name.encode()) > _FILE_NAME_BYTES):
        raise InvalidInputError(
            f"`filename` must be a file's name such as facts.csv (its extension gives the "
            f"format), not a path or {filename!r}."
        )
    return name


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.state.features.update(knowledge=True)
