"""``dialoop recommend`` in a temporary home, and ``/api/recommend`` through a real server:
admins import and train, everyone records and reads only their own."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from dialoop.assistant import Assistant, open_assistant
from dialoop.cli import cli
from dialoop.config import Settings
from dialoop.serve import create_app
from dialoop.serve.server import background_server
from tests.fakes import FakeEngine
from tests.recommend.data import catalogue, interactions, write_catalogue


def _run(*args: str, code: int = 0, input: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=input)
    assert result.exit_code == code, (result.output, result.exception)
    # a DialoopError ends the command here (main() prints it as one line)
    return result.output + (str(result.exception) if result.exception else "")


def test_the_command_line(tmp_path: Path) -> None:
    books = write_catalogue(tmp_path / "books.jsonl")
    assert "40 items added" in _run("recommend", "import", str(books))
    assert "0 items added, 40 updated" in _run("recommend", "import", str(books))
    with (tmp_path / "ratings.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "item", "rating", "time"])
        for n, e in enumerate(interactions()):
            w.writerow([e.user, e.item, e.value, 1_700_000_000 + n])
    assert "Recorded 270 interactions" in _run("recommend", "events", str(tmp_path / "ratings.csv"))
    assert "Model v1 serves: 270 interactions of 30 users; ALS" in _run(
        "recommend", "train", "--threads", "1")
    _run("recommend", "rate", "s3", "5", "--user", "ann")
    _run("recommend", "event", "s4", "--kind", "purchase", "--user", "ann")
    listed = json.loads(_run("recommend", "list", "-k", "4", "--json", "--user", "ann"))
    assert len(listed) == 4 and sum(r["exploring"] for r in listed) == 0  # round(0.4) slots
    assert {r["because"] for r in listed} <= {"s3", "s4"}
    text = _run("recommend", "list", "-k", "3", "--no-explore", "--user", "ann")
    assert "because you liked" in text and "—" in text
    assert [h["item"] for h in json.loads(_run("recommend", "history", "--json",
                                               "--user", "ann"))] == ["s4", "s3"]
    assert "Deleted 1" in _run("recommend", "forget", "s4", "--user", "ann")
    assert "Deleted" in _run("recommend", "forget", "--user", "ann", input="y\n")
    assert json.loads(_run("recommend", "history", "--json", "--user", "ann")) == []
    # bad input: a clear error, nothing changed
    assert "no item 'zz'" in _run("recommend", "rate", "zz", "4", "--user", "ann", code=1)
    _run("recommend", "rate", "s1", "9", "--user", "ann", code=2)
    assert "Only an admin" in _run("recommend", "train", "--user", "ann", code=1)
    assert "Only an admin" in _run("recommend", "import", str(books), "--user", "ann", code=1)
    assert "v1   serving" in _run("recommend", "models")


@pytest.fixture
def bot(settings: Settings) -> Iterator[Assistant]:
    with open_assistant(settings, engine=FakeEngine()) as assistant:
        yield assistant


def test_the_api(bot: Assistant) -> None:
    keys = {"root": bot.parts.accounts.add_key("root", "admin")[1],
            **{u: bot.parts.accounts.add_key(u)[1] for u in ("ann", "bob")}}
    items = [{"id": i.id, "title": i.title, "text": i.text, "attributes": i.attributes}
             for i in catalogue()]
    events = [{"user": e.user, "item": e.item, "kind": e.kind, "value": e.value}
              for e in interactions()]
    with background_server(create_app(bot)) as server:
        root, ann, bob = (httpx.Client(base_url=server.url, timeout=60, headers={
            "Authorization": f"Bearer {keys[u]}"}) for u in ("root", "ann", "bob"))
        assert ann.post("/api/recommend/items", json={"items": items}).status_code == 403
        assert root.post("/api/recommend/items", json={"items": items}).json() == {
            "added": 40, "updated": 0}
        assert ann.post("/api/recommend/events", json={"events": events[:3]}).status_code == 403
        assert root.post("/api/recommend/events", json={"events": events}).status_code == 201
        assert ann.post("/api/recommend/train").status_code == 403
        assert root.post("/api/recommend/train").json()["collaborative"] is True

        mine = ann.post("/api/recommend/events", json={"events": [
            {"item": "c2", "kind": "rating", "value": 5}, {"item": "c5", "kind": "like"}]})
        assert mine.status_code == 201, mine.text
        bad = ann.post("/api/recommend/events", json={"events": [
            {"item": "c7", "kind": "like"}, {"item": "nope", "kind": "like"}]})
        assert bad.status_code == 404
        assert [h["item"] for h in ann.get("/api/recommend/events").json()] == ["c5", "c2"]
        assert bob.get("/api/recommend/events").json() == []

        top = ann.post("/api/recommend", json={"k": 5, "explore": 0}).json()
        assert len(top) == 5 and {r["because"] for r in top} <= {"c2", "c5"}
        assert sum(r["item"].startswith("c") for r in top) >= 4
        assert all(r["because"] is None for r in bob.post("/api/recommend", json={}).json())
        assert ann.post("/api/recommend", json={"k": 0}).status_code == 400
        assert ann.delete("/api/recommend/events", params={"item": "c5"}).json() == {
            "deleted": 1}
        assert [m["status"] for m in ann.get("/api/recommend/models").json()] == ["serving"]
        assert httpx.get(f"{server.url}/api/health").json()["features"]["recommend"] is True
