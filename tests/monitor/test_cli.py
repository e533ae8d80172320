"""``dialoop monitor ingest|report|alerts|items|correct|train`` in a temporary home."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from dialoop.cli import cli
from tests.monitor.streams import stream

CONFIG = """\
bucket: 1h
topics:
  app: {keywords: [app, login]}
alerts:
  - {name: negative-share, kind: threshold, metric: negative_share, above: 0.65, min_items: 5}
"""


def _run(*args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _write_jsonl(path: Path, hours: int, surge_at: int | None) -> Path:
    with path.open("w") as f:
        for item in stream(hours=hours, per_hour=5, surge_at=surge_at, seed=4):
            f.write(json.dumps({"text": item.text, "time": item.time.isoformat(),
                                "source": "forum", "label": "unknown"}) + "\n")
    return path


def test_ingest_report_alerts_correct(tmp_path: Path, dialoop_home: Path) -> None:
    (dialoop_home).mkdir(parents=True, exist_ok=True)
    (dialoop_home / "monitor.yaml").write_text(CONFIG)  # the default config's place
    out = _run("monitor", "ingest", str(_write_jsonl(tmp_path / "news.jsonl", 8, 6)))
    assert "Ingested " in out and "ALERT" in out and "app" in out

    report = json.loads(_run("monitor", "report", "--json", "--plot", str(tmp_path / "t.png")))
    (row,) = report["topics"]
    assert row["topic"] == "app" and row["buckets"] == 8 and row["alerts"] == 1
    assert (tmp_path / "t.png").stat().st_size > 10_000
    assert "app" in _run("monitor", "report")

    (alert,) = json.loads(_run("monitor", "alerts", "--json"))
    assert alert["rule"] == "negative-share" and alert["bucket"].startswith("2026-03-02 06:00")
    assert "negative-share" in _run("monitor", "alerts")

    newest = json.loads(_run("monitor", "items", "--json", "--limit", "1"))[0]
    assert newest["meta"] == {"label": "unknown"} and newest["source"] == "forum"
    flip = "positive" if newest["sentiment"] != "positive" else "negative"
    out = _run("monitor", "correct", str(newest["id"]), "--sentiment", flip)
    assert f"→ app/{flip}" in out
    assert json.loads(_run("monitor", "items", "--json", "--limit", "1"))[0]["corrected"]


def test_ingest_csv_from_stdin_and_a_config_option(tmp_path: Path) -> None:
    config = tmp_path / "m.yaml"
    config.write_text(CONFIG)
    rows = [{"text": i.text, "time": i.time.isoformat(), "source": "email"}
            for i in stream(hours=2, per_hour=3, seed=5)]
    with (tmp_path / "in.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["text", "time", "source"])
        writer.writeheader()
        writer.writerows(rows)
    out = json.loads(_run("monitor", "--config", str(config), "ingest", "--json", "--format",
                          "csv", "-", input=(tmp_path / "in.csv").read_text()))
    assert out["ingested"] == len(rows) and out["by_topic"] == {"app": len(rows)}


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "no text field"}\n')
    result = CliRunner().invoke(cli, ["monitor", "ingest", str(bad)])
    assert result.exit_code == 1 and "bad.jsonl:2: the item has no 'text'" in str(result.exception)
    assert json.loads(_run("monitor", "items", "--json")) == []  # its good line was not stored
