"""Each alert rule fires on an injected negative surge, and none fires on a calm stream."""

from __future__ import annotations

import pytest

from dialoop.errors import ConfigError
from dialoop.monitor import AlertRule, MonitorConfig
from dialoop.monitor.alerts import evaluate
from tests.monitor.streams import stream

RULES = {
    "threshold": AlertRule("share", "threshold", "negative_share", above=0.65, min_items=5),
    "rate": AlertRule("jump", "rate", "negative", above=3.0, floor=2.0, min_items=5),
    "zscore": AlertRule("surge", "zscore", "negative", above=4.0, window=8, floor=2.0,
                        min_items=5),
}


@pytest.mark.parametrize("kind", list(RULES))
def test_each_rule_fires_on_the_surge_and_only_there(kind: str) -> None:
    negatives = [1, 0, 1, 1, 0, 2, 1, 0, 1, 1, 9, 1]
    totals = [6, 5, 7, 6, 6, 7, 5, 6, 6, 7, 12, 6]
    fired = [i for i in range(len(totals)) if evaluate(RULES[kind], negatives, totals, i)]
    assert fired == [10]


def test_small_buckets_and_short_histories_never_fire() -> None:
    assert evaluate(RULES["threshold"], [3], [3], 0) is None  # 100% negative, but 3 items
    assert evaluate(RULES["zscore"], [0, 0, 9], [6, 6, 12], 2) is None  # 2 buckets < window 8
    assert evaluate(RULES["rate"], [9], [12], 0) is None  # nothing before it


@pytest.mark.parametrize("kind", list(RULES))
def test_a_monitored_stream_alerts_on_its_surge_and_not_when_calm(make_monitor,  # type: ignore[no-untyped-def]
                                                                   kind: str) -> None:
    monitor = make_monitor(MonitorConfig(rules=(RULES[kind],)))
    calm = monitor.ingest(stream(hours=24, seed=1), user="ann")
    assert calm.alerts == []
    surge = monitor.ingest(stream(hours=24, surge_at=20, seed=2), user="bob")
    assert [(a["rule"], a["bucket"].hour) for a in surge.alerts] == [(RULES[kind].name, 20)]
    assert monitor.alerts(user="bob")[0]["topic"] == "general"
    assert monitor.alerts(user="ann") == []


def test_an_alert_is_recorded_once_however_often_its_bucket_grows(make_monitor) -> None:  # type: ignore[no-untyped-def]
    monitor = make_monitor(MonitorConfig(rules=(RULES["threshold"],)))
    items = stream(hours=3, surge_at=2, seed=3)
    for start in range(0, len(items), 5):  # the bucket is re-evaluated as each batch lands
        monitor.ingest(items[start:start + 5], user="ann")
    assert len(monitor.alerts(user="ann")) == 1


def test_a_rule_that_cannot_work_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="window is at least 2"):
        AlertRule("x", "zscore", window=1)
    with pytest.raises(ConfigError, match="kind is threshold, rate or zscore"):
        AlertRule("x", "spike")  # type: ignore[arg-type]
