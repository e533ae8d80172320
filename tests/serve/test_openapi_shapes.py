"""The OpenAPI document against the types OpenAI's client parses: every field the client
requires is documented for every OpenAI-compatible endpoint, nested objects included, and
what the server really sends matches both the document and the client's type."""

from __future__ import annotations

import types
import typing
from typing import Any

import httpx
import pytest
from openai.types import Completion, CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from openapi_spec_validator import validate
from pydantic import BaseModel

from dialoop.serve.responses import ResponseObject

# (path, method, the client's type of the 200 body)
ENDPOINTS = [
    ("/v1/chat/completions", "post", ChatCompletion),
    ("/v1/completions", "post", Completion),
    ("/v1/embeddings", "post", CreateEmbeddingResponse),
    ("/v1/responses", "post", Response),
]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow $ref and a nullable anyOf (X | None) to the object schema."""
    while True:
        if "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            if len(options) != 1:
                return node
            node = options[0]
        elif node.get("type") == "array" and "items" in node:
            node = node["items"]
        else:
            return node


def _single_model(annotation: Any) -> type[BaseModel] | None:
    """The one pydantic model inside ``annotation`` (X, X | None, list[X]); None for unions
    of several models, scalars and dicts."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in args if a is not type(None)]
        return _single_model(models[0]) if len(models) == 1 else None
    if origin is list and args:
        return _single_model(args[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _missing(schema: dict[str, Any], node: dict[str, Any], model: type[BaseModel],
             where: str) -> list[str]:
    """Fields ``model`` requires that the documented object ``node`` lacks, recursively."""
    node = _resolve(schema, node)
    properties = node.get("properties")
    if properties is None:  # a free-form object (dict[str, Any]) documents any field
        return []
    out = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if not field.is_required():
            continue
        if key not in properties:
            out.append(f"{where}.{key}")
            continue
        inner = _single_model(field.annotation)
        if inner is not None:
            out += _missing(schema, properties[key], inner, f"{where}.{key}")
    return out


@pytest.fixture
def openapi(http: httpx.Client) -> dict[str, Any]:
    schema = http.get("/openapi.json").json()
    validate(schema)
    return schema


@pytest.mark.parametrize(("path", "method", "client_type"), ENDPOINTS,
                         ids=[e[0] for e in ENDPOINTS])
def test_documented_body_has_every_field_the_client_requires(
        openapi: dict[str, Any], path: str, method: str, client_type: type[BaseModel]) -> None:
    ok = openapi["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    assert _missing(openapi, ok["schema"], client_type, client_type.__name__) == []


def test_documented_model_list_has_every_field_of_a_client_model(
        openapi: dict[str, Any]) -> None:
    ok = openapi["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]
    listing = _resolve(openapi, ok["application/json"]["schema"])
    assert {"object", "data"} <= set(listing["properties"])
    assert _missing(openapi, listing["properties"]["data"], Model, "Model") == []


def test_the_checker_sees_a_missing_nested_field(openapi: dict[str, Any]) -> None:
    """The check above can fail: drop a field the client requires deep inside a choice."""
    broken = {**openapi, "components": {"schemas": dict(openapi["components"]["schemas"])}}
    name = next(n for n, s in broken["components"]["schemas"].items()
                if "finish_reason" in s.get("properties", {}) and "message" in s["properties"])
    choice = dict(broken["components"]["schemas"][name])
    choice["properties"] = {k: v for k, v in choice["properties"].items() if k != "index"}
    broken["components"]["schemas"][name] = choice
    ok = broken["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert _missing(broken, ok["application/json"]["schema"], ChatCompletion,
                    "ChatCompletion") == ["ChatCompletion.choices.index"]


def test_a_real_response_matches_the_document_and_the_client(http: httpx.Client) -> None:
    body = http.post("/v1/responses", json={"model": "default", "input": "hello there"})
    assert body.status_code == 200, body.text
    raw = body.json()
    ResponseObject.model_validate(raw)  # what we document is what we send
    parsed = Response.model_validate(raw)  # and OpenAI's client reads it
    assert parsed.output_text == raw["output"][0]["content"][0]["text"]
