"""Monitor configs load, and a wrong one says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialoop.errors import ConfigError, InvalidInputError
from dialoop.monitor import load_config
from dialoop.monitor.read import parse_time

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sentiment_monitor"


def test_the_example_configs_load() -> None:
    bank = load_config(EXAMPLE / "monitor.yaml")
    assert bank.bucket_seconds == 3600 and bank.topic_names == ["app", "cards", "rates",
                                                                "fees", "general"]
    assert [r.kind for r in bank.rules] == ["threshold", "rate", "zscore"]
    assert load_config(EXAMPLE / "reviews.yaml").bucket_seconds == 86400


@pytest.mark.parametrize(("text", "fix"), [
    ("bucket: 1 week\n", "a bucket is a whole number with s, m, h or d"),
    ("topics:\n  app: {}\n", "has neither keywords nor examples"),
    ("alerts:\n  - {name: a, kind: zscore, windw: 3}\n", "unknown keys ['windw']"),
    ("topic: {}\n", "unknown keys ['topic']"),
    ("topics:\n  general: {keywords: [x]}\n", "not be 'general'"),
])
def test_a_wrong_config_names_the_fix(tmp_path: Path, text: str, fix: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fix.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_times_are_read_as_utc_and_typos_refused() -> None:
    assert parse_time("2026-03-02T10:00:00+02:00").hour == 8
    assert parse_time("2026-03-02 10:00").tzinfo is not None
    assert parse_time(0).year == 1970
    for bad in ("yesterday", "9999-01-01", float("inf"), True):
        with pytest.raises(InvalidInputError):
            parse_time(bad)


def test_the_package_exports_what_it_says() -> None:
    import dialoop.monitor as monitor

    assert sorted(monitor.__all__) == sorted(set(monitor.__all__))
    assert all(hasattr(monitor, name) for name in monitor.__all__)
    assert {"Monitor", "load_config", "read_items", "ItemIn"} <= set(monitor.__all__)
