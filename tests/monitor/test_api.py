"""``/api/monitor``: items in, series and alerts out, corrections; each user sees only theirs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dialoop.assistant import Assistant, open_assistant
from dialoop.config import Settings
from dialoop.serve import create_app
from dialoop.serve.server import background_server
from tests.fakes import FakeEngine
from tests.monitor.streams import stream

CONFIG = """\
bucket: 1h
topics:
  app: {keywords: [app]}
alerts:
  - {name: surge, kind: zscore, metric: negative, window: 4, above: 3, floor: 2, min_items: 5}
"""


@pytest.fixture
def bot(settings: Settings) -> Iterator[Assistant]:
    (settings.home / "monitor.yaml").write_text(CONFIG)
    with open_assistant(settings, engine=FakeEngine()) as assistant:
        yield assistant


def test_round_trip_and_isolation(bot: Assistant) -> None:
    keys = {name: bot.parts.accounts.add_key(name)[1] for name in ("ann", "bob")}
    items = [{"text": i.text, "time": i.time.isoformat(), "source": "forum", "ref": n}
             for n, i in enumerate(stream(hours=8, per_hour=5, surge_at=6, seed=6))]
    with background_server(create_app(bot)) as server:
        ann, bob = (httpx.Client(base_url=server.url, timeout=60,
                                 headers={"Authorization": f"Bearer {keys[u]}"})
                    for u in ("ann", "bob"))
        posted = ann.post("/api/monitor/items", json={"items": items})
        assert posted.status_code == 201, posted.text
        body = posted.json()
        assert body["ingested"] == len(items) and body["by_topic"] == {"app": len(items)}
        assert [(a["rule"], a["bucket"][11:13]) for a in body["alerts"]] == [("surge", "06")]

        series = ann.get("/api/monitor/series").json()
        assert series["bucket_seconds"] == 3600 and len(series["topics"]["app"]) == 8
        assert sum(p["total"] for p in series["topics"]["app"]) == len(items)
        assert ann.get("/api/monitor/alerts").json()[0]["rule"] == "surge"
        item = ann.get("/api/monitor/items", params={"limit": 1}).json()[0]
        assert item["meta"] == {"ref": len(items) - 1}

        # bob sees none of it, and cannot correct ann's item
        assert bob.get("/api/monitor/series").json()["topics"] == {}
        assert bob.get("/api/monitor/alerts").json() == []
        assert bob.get("/api/monitor/items").json() == []
        refused = bob.post("/api/monitor/corrections",
                           json={"item_id": item["id"], "sentiment": "negative"})
        assert refused.status_code == 404

        fixed = ann.post("/api/monitor/corrections",
                         json={"item_id": item["id"], "sentiment": "neutral"})
        assert fixed.status_code == 201 and fixed.json()["corrected"] is True
        assert ann.post("/api/monitor/corrections", json={"item_id": item["id"],
                                                          "topic": "nope"}).status_code == 400
        assert ann.post("/api/monitor/items", json={"items": [
            {"text": "x", "time": "yesterday"}]}).status_code == 400
        assert ann.post("/api/monitor/train").status_code == 400  # one correction is too few
        assert httpx.get(f"{server.url}/api/monitor/alerts").status_code == 401
