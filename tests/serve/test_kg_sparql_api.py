"""``POST /api/knowledge/sparql``: each caller queries what they may see; bad queries are 400."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dialoop.assistant import Assistant
from dialoop.evidence import Scope
from dialoop.serve import create_app
from dialoop.serve.server import background_server

SALARY = "SELECT ?o WHERE { ?s r:salary ?o }"


@pytest.fixture
def keyed(bot: Assistant) -> Iterator[tuple[str, dict[str, str]]]:
    kb = bot.parts.knowledge
    kb.add_fact("Aurora Lamp", "price", "19.99 EUR", user="admin", scope=Scope.everyone())
    kb.add_fact("Ann", "salary", "91000", user="ann")
    keys = {name: bot.parts.accounts.add_key(name)[1] for name in ("ann", "bob")}
    with background_server(create_app(bot)) as server:
        yield server.url, keys


def _post(url: str, key: str, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.post(f"{url}/api/knowledge/sparql", headers=headers, timeout=30,
                      **kwargs)  # type: ignore[arg-type]


def test_bobs_sparql_never_returns_anns_private_facts(keyed) -> None:  # type: ignore[no-untyped-def]
    url, keys = keyed
    ann = _post(url, keys["ann"], json={"query": SALARY})
    assert ann.status_code == 200, ann.text
    assert ann.headers["content-type"].startswith("application/sparql-results+json")
    assert [b["o"]["value"] for b in ann.json()["results"]["bindings"]] == ["91000"]
    for body in ({"query": SALARY}, {"query": "SELECT ?s ?p ?o WHERE { ?s ?p ?o }"}):
        bob = _post(url, keys["bob"], json=body)
        assert bob.status_code == 200 and "91000" not in bob.text
    assert "19.99" in bob.text


def test_csv_by_accept_and_raw_query_body(keyed) -> None:  # type: ignore[no-untyped-def]
    url, keys = keyed
    raw = _post(url, keys["bob"], content="SELECT ?o WHERE { ?s r:price ?o }",
                headers={"Content-Type": "application/sparql-query", "Accept": "text/csv"})
    assert raw.status_code == 200, raw.text
    assert raw.headers["content-type"].startswith("text/csv")
    assert raw.text.splitlines() == ["o", "19.99"]
    by_field = _post(url, keys["bob"], json={"query": SALARY, "format": "csv"})
    assert by_field.text.splitlines() == ["o"]


@pytest.mark.parametrize(("body", "message"), [
    ({"query": "SELECT ?s WHERE {"}, "does not parse"),
    ({"query": "INSERT DATA { <urn:a> <urn:b> <urn:c> }"}, "read-only"),
    ({"query": "SELECT * WHERE { SERVICE <http://example.org/q> { ?s ?p ?o } }"}, "SERVICE"),
    ({"sparql": "SELECT * WHERE { ?s ?p ?o }"}, "query"),
])
def test_bad_queries_are_400_and_change_nothing(keyed, body, message) -> None:  # type: ignore[no-untyped-def]
    url, keys = keyed
    refused = _post(url, keys["ann"], json=body)
    assert refused.status_code == 400, refused.text
    assert message in refused.json()["error"]["message"]
    assert "91000" in _post(url, keys["ann"], json={"query": SALARY}).text
