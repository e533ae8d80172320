"""The native API: sessions, turns with traces, health, metrics, the OpenAPI schema."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from dialoop.assistant import Assistant
from dialoop.serve import create_app
from dialoop.serve.server import RunningServer, background_server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(assistant: Assistant) -> Iterator[RunningServer]:
    with background_server(create_app(assistant)) as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=120)


def _chat(http: httpx.Client, text: str, session: str | None = None) -> dict:
    headers = {"X-Dialoop-Session": session} if session else {}
    response = http.post("/v1/chat/completions", headers=headers, json={
        "model": "default", "max_tokens": 12, "messages": [{"role": "user", "content": text}]})
    response.raise_for_status()
    return response.json()


def test_sessions_list_get_export_delete(http: httpx.Client) -> None:
    first = _chat(http, "What is the capital of Japan?", session="geo")
    _chat(http, "And of Italy?", session="geo")
    other = _chat(http, "Hello!")
    listed = http.get("/api/sessions").json()
    assert [s["label"] for s in listed] == [other["dialoop"]["session_id"], "geo"]  # newest first
    assert listed[1]["turns"] == 4
    assert listed[1]["title"] == "What is the capital of Japan?"

    session = http.get("/api/sessions/geo").json()
    assert session["id"] == first["dialoop"]["session_id"]
    assert [t["role"] for t in session["turns"]] == ["user", "assistant"] * 2
    answer = session["turns"][1]
    assert answer["content"] == first["choices"][0]["message"]["content"]

    export = http.get(f"/api/sessions/{session['id']}/export")
    assert "attachment" in export.headers["content-disposition"]
    assert export.json() == session

    assert http.delete("/api/sessions/geo").json() == {"deleted": session["id"]}
    assert http.get("/api/sessions/geo").status_code == 404
    assert [s["label"] for s in http.get("/api/sessions").json()] == [
        other["dialoop"]["session_id"]]


def test_turn_with_its_trace(http: httpx.Client) -> None:
    reply = _chat(http, "What is the capital of Japan?")
    turn = http.get(f"/api/turns/{reply['dialoop']['turn_id']}").json()
    assert turn["session_id"] == reply["dialoop"]["session_id"]
    assert turn["role"] == "assistant"
    trace = turn["trace"]
    assert trace["context"]["prompt_tokens"] == reply["usage"]["prompt_tokens"]
    assert trace["params"]["max_tokens"] == 12
    missing = http.get("/api/turns/999999")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert http.get("/api/turns/abc").status_code == 400  # validated, with our error shape


def test_health_and_metrics(http: httpx.Client) -> None:
    health = http.get("/api/health").json()
    assert health["status"] == "ok"
    assert health["auth"] == "local"
    assert health["answers"] == {"running": 0, "waiting": 0, "capacity": 33}
    reply = _chat(http, "Hello!")
    text = http.get("/api/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {(s.labels["route"], s.labels["status"]): s.value
                for s in families["dialoop_http_requests"].samples if s.name.endswith("_total")}
    assert requests[("/v1/chat/completions", "200")] == 1
    assert requests[("/api/health", "200")] == 1
    tokens = families["dialoop_completion_tokens"].samples[0].value
    assert tokens == reply["usage"]["completion_tokens"]
    assert families["dialoop_queue_depth"].samples[0].value == 0
    assert "dialoop_adapter_version" in families
    assert "dialoop_decode_tokens_per_second" in families
    assert "dialoop_time_to_first_token_seconds" in families


def test_openapi_schema_is_valid_and_complete(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    validate(schema)  # raises if the document is not valid OpenAPI
    paths = schema["paths"]
    for path in ("/v1/chat/completions", "/v1/models", "/api/sessions", "/api/sessions/{ref}",
                 "/api/sessions/{ref}/export", "/api/turns/{turn_id}", "/api/health",
                 "/api/metrics"):
        assert path in paths, path
    post = paths["/v1/chat/completions"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/ChatCompletionRequest")
    # Validation errors are documented with the shape they really have (no FastAPI 422).
    assert "422" not in post["responses"]
    assert post["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse")
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_docs_page_is_served_without_a_cdn(http: httpx.Client) -> None:
    page = http.get("/docs").text
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    for asset in assets:
        assert http.get(asset).status_code == 200, asset


def test_unknown_route_is_a_json_404(http: httpx.Client) -> None:
    response = http.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
