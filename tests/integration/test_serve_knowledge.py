"""The knowledge API over HTTP, with accounts: who may import, add and see what."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dialoop.assistant import open_assistant
from dialoop.config import load_settings
from dialoop.serve import create_app
from dialoop.serve.server import background_server

pytestmark = pytest.mark.slow
GRAPH = Path(__file__).parents[2] / "examples" / "store_support" / "knowledge.jsonl"


@pytest.fixture
def clients(dialoop_home, llama_engine) -> Iterator[dict[str, httpx.Client]]:  # type: ignore[no-untyped-def]
    with open_assistant(load_settings(), engine=llama_engine) as bot:
        accounts = bot.parts.accounts
        keys = {"ann": accounts.add_key("ann")[1], "bob": accounts.add_key("bob")[1],
                "root": accounts.add_key("root", "admin")[1]}
        with background_server(create_app(bot, keys_required=True)) as running:
            yield {name: httpx.Client(base_url=running.url, timeout=120,
                                      headers={"Authorization": f"Bearer {key}"})
                   for name, key in keys.items()}


def _import(client: httpx.Client, name: str, content: bytes) -> httpx.Response:
    return client.post("/api/knowledge/import", params={"filename": name}, content=content)


def test_admins_import_everyone_reads(clients: dict[str, httpx.Client]) -> None:
    ann, root = clients["ann"], clients["root"]
    assert ann.get("/api/health").json()["features"]["knowledge"] is True
    assert _import(ann, GRAPH.name, GRAPH.read_bytes()).status_code == 403
    first = _import(root, GRAPH.name, GRAPH.read_bytes()).json()
    assert first["added"] > 20
    again = _import(root, GRAPH.name, GRAPH.read_bytes()).json()
    assert again["added"] == 0 and again["existing"] == first["added"]  # idempotent

    found = ann.post("/api/knowledge/query",
                     json={"question": "How much is the Stratus Lamp?"}).json()
    assert "59" in found["answer"]
    assert found["evidence"][0]["source"].startswith("triple:")
    names = [e["name"] for e in ann.get("/api/knowledge/entities",
                                        params={"search": "stratus"}).json()]
    assert "Stratus Lamp" in names
    entity = ann.get("/api/knowledge/entities/stratus lamp").json()
    assert entity["name"] == "Stratus Lamp"
    assert {"price", "category"} <= {t["relation"] for t in entity["triples"]}
    assert ann.get("/api/knowledge/stats").json()["triples (global)"] == first["added"]


def test_a_bad_file_is_refused_whole(clients: dict[str, httpx.Client]) -> None:
    root = clients["root"]
    bad = b'{"subject": "A", "relation": "r", "object": "B"}\n{"subject": "C"\n'
    response = _import(root, "bad.jsonl", bad)
    assert response.status_code == 400
    assert "line 2" in response.json()["error"]["message"]
    assert root.get("/api/knowledge/stats").json()["triples (global)"] == 0
    assert _import(root, "graph.exe", b"x").status_code == 400
    assert _import(root, "empty.jsonl", b"").status_code == 400


def test_a_users_facts_stay_theirs(clients: dict[str, httpx.Client]) -> None:
    ann, bob = clients["ann"], clients["bob"]
    fact = {"subject": "Zorblax Widget", "relation": "price", "object": "12"}
    assert ann.post("/api/knowledge/triples", json={**fact, "scope": "global"}).status_code == 403
    added = ann.post("/api/knowledge/triples", json=fact)
    assert added.status_code == 201, added.text
    triple = added.json()
    assert triple["scope"] == "user:ann" and triple["object"] == "12"
    question = {"question": "What is the price of the Zorblax Widget?"}
    assert "12" in (ann.post("/api/knowledge/query", json=question).json()["answer"] or "")
    assert "12" not in (bob.post("/api/knowledge/query", json=question).json()["answer"] or "")
    assert bob.get("/api/knowledge/entities/Zorblax Widget").status_code == 404
    assert bob.get("/api/knowledge/entities", params={"search": "zorblax"}).json() == []
    number = triple["id"].removeprefix("triple:")
    assert bob.delete(f"/api/knowledge/triples/{number}").status_code == 404
    assert ann.delete(f"/api/knowledge/triples/{number}").status_code == 204
    assert ann.post("/api/knowledge/triples", json={**fact, "subject": ""}).status_code == 400
