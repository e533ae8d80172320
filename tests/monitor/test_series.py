"""Per-topic time series: items counted per sentiment per bucket, stored, gaps as zeros."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dialoop.monitor import ItemIn, MonitorConfig, TopicSpec, bucket_of
from dialoop.store.monitor import MonitorCount

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GOOD, BAD = "Great service, thank you so much!", "Terrible service, I am furious."


def test_a_time_falls_in_the_bucket_that_starts_at_or_before_it() -> None:
    assert bucket_of(datetime(2026, 3, 2, 9, 59, 59, tzinfo=UTC), 3600) == T0
    assert bucket_of(T0, 3600) == T0
    assert bucket_of(datetime(2026, 3, 2, 9, 14, tzinfo=UTC), 900) == T0
    assert bucket_of(datetime(2026, 3, 2, 23, 0, tzinfo=UTC), 86400) == T0.replace(hour=0)


def test_counts_per_topic_sentiment_and_bucket_with_empty_buckets_as_zeros(make_monitor,  # type: ignore[no-untyped-def]
                                                                            db) -> None:
    monitor = make_monitor(MonitorConfig(topics=(TopicSpec("service", keywords=("service",)),)))
    items = [ItemIn(GOOD, T0 + timedelta(minutes=5)), ItemIn(BAD, T0 + timedelta(minutes=50)),
             ItemIn(BAD, T0 + timedelta(minutes=55)),
             ItemIn(GOOD, T0 + timedelta(hours=3, minutes=1)),
             ItemIn("The weather is mild.", T0 + timedelta(hours=1))]
    monitor.ingest(items, user="ann")
    series = monitor.series(user="ann")
    assert list(series) == ["general", "service"]
    counts = [(p["bucket"].hour, p["positive"], p["negative"], p["total"])
              for p in series["service"]]
    assert counts == [(9, 1, 2, 3), (10, 0, 0, 0), (11, 0, 0, 0), (12, 1, 0, 1)]
    with db.read() as s:  # stored, not recomputed from the items on each read
        assert s.query(MonitorCount).filter_by(topic="service").count() == 3
    assert monitor.series(user="bob") == {}


def test_a_correction_moves_its_item_between_counts(make_monitor) -> None:  # type: ignore[no-untyped-def]
    monitor = make_monitor()
    ids = monitor.ingest([ItemIn(GOOD, T0), ItemIn(GOOD, T0)], user="ann").ids
    monitor.correct(ids[0], user="ann", sentiment="negative")
    (point,) = monitor.series(user="ann")["general"]
    assert (point["positive"], point["negative"], point["total"]) == (1, 1, 2)
