"""Opinion and sentiment monitoring: texts in, topic and sentiment out, trends and alerts.

    from dialoop.monitor import Monitor, load_config, read_items

    monitor = Monitor(db, default_embedder(), load_config(Path("monitor.yaml")))
    result = monitor.ingest(read_items(open("news.jsonl"), "jsonl"), user="ann")
    monitor.series(user="ann"); monitor.alerts(user="ann")
    monitor.correct(item_id, user="ann", sentiment="negative"); monitor.train(user="ann")

Parts: the config (:mod:`.config`), input files (:mod:`.read`), the classifiers
(:mod:`.classify`, with the built-in sentences of :mod:`.seed`), alert rules
(:mod:`.alerts`), retraining behind a gate (:mod:`.training`) and the monitor itself
(:mod:`.monitor`), which stores everything in the tables of :mod:`dialoop.store.monitor`.
"""

from __future__ import annotations

from dialoop.monitor.config import (
    DEFAULT_TOPIC,
    SENTIMENTS,
    AlertRule,
    MonitorConfig,
    TopicSpec,
    load_config,
)
from dialoop.monitor.monitor import IngestResult, Monitor, bucket_of
from dialoop.monitor.read import ItemIn, format_of, item_from, read_items

__all__ = [
    "DEFAULT_TOPIC",
    "SENTIMENTS",
    "AlertRule",
    "IngestResult",
    "ItemIn",
    "Monitor",
    "MonitorConfig",
    "TopicSpec",
    "bucket_of",
    "format_of",
    "item_from",
    "load_config",
    "read_items",
]
