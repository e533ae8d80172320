"""The monitor: items in, labelled, counted per topic and time bucket, alerts recorded.

Everything is per user: a user's items, series, alerts, corrections and heads are
invisible to every other user (an item of another user is "not found", exactly like
one that does not exist).

Corrections live in ``monitor_corrections``, not in the feedback store of lessons:
a lesson is an answer the assistant retrieves into a conversation, and an analyst's
"this headline is negative" is not an answer to anything. The learning is the same
in spirit (durable before acknowledged, applied at once to the item and its counts,
consolidated into a model behind a gate, see :mod:`dialoop.monitor.training`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import sqlalchemy as sa

from dialoop.engine.embedding import Embedder
from dialoop.errors import InvalidInputError, NotFoundError
from dialoop.monitor.alerts import evaluate
from dialoop.monitor.classify import Label, SentimentHead, TopicModel
from dialoop.monitor.config import SENTIMENTS, MonitorConfig
from dialoop.monitor.read import EARLIEST, LATEST, ItemIn
from dialoop.monitor.training import MIN_CORRECTIONS, SeedVectors, retrain
from dialoop.store import Database
from dialoop.store.models import check_text, utcnow
from dialoop.store.monitor import (
    MonitorAlert,
    MonitorCorrection,
    MonitorCount,
    MonitorHead,
    MonitorItem,
)

__all__ = ["BATCH", "IngestResult", "Monitor", "bucket_of"]

log = logging.getLogger(__name__)

BATCH = 256  # items labelled (one embedding batch) and committed at a time


@dataclass
class IngestResult:
    ingested: int = 0
    ids: list[int] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    by_topic: Counter[str] = field(default_factory=Counter)
    by_sentiment: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def to_dict(self, *, ids: bool = True) -> dict[str, Any]:
        return {"ingested": self.ingested, **({"ids": self.ids} if ids else {}),
                "alerts": self.alerts, "by_topic": dict(self.by_topic),
                "by_sentiment": dict(self.by_sentiment), "seconds": round(self.seconds, 3)}


def bucket_of(when: datetime, seconds: int) -> datetime:
    """The start of the ``seconds``-wide bucket ``when`` falls in (buckets start at 1970)."""
    ts = int(when.timestamp() // seconds) * seconds
    return datetime.fromtimestamp(ts, UTC)


class Monitor:
    """Label, count and alert; learn from corrections. Thread-safe."""

    def __init__(self, db: Database, embedder: Embedder, config: MonitorConfig) -> None:
        self.db = db
        self.embedder = embedder
        self.config = config
        self._lock = threading.Lock()
        self._seeds: SeedVectors | None = None
        self._heads: dict[tuple[str, int], SentimentHead] = {}
        self._topics: dict[tuple[str, int], TopicModel] = {}

    # -- labelling ------------------------------------------------------------------------

    def label(self, texts: list[str], *, user: str) -> tuple[list[Label], int]:
        """The labels of ``texts`` with ``user``'s head, and that head's version."""
        head, topics = self.head(user), self._topic_model(user)
        vectors = self.embedder.embed(texts)  # (N, D)
        names = topics.assign(texts, vectors)
        labels = [Label(t, s, c) for t, (s, c) in zip(names, head.predict(vectors), strict=True)]
        return labels, head.version

    def ingest(self, items: Iterable[ItemIn], *, user: str) -> IngestResult:
        """Label and store ``items``, update the series, record the alerts that fire."""
        result, start = IngestResult(), time.perf_counter()
        for batch in _batches(iter(items), BATCH):
            for item in batch:  # items made in code, not read by item_from
                check_text(item.text, "An item's text")
            labels, version = self.label([i.text for i in batch], user=user)
            now = utcnow()
            rows = [MonitorItem(user_id=user, text=i.text, source=i.source, time=i.time or now,
                                topic=lab.topic, sentiment=lab.sentiment,
                                confidence=round(lab.confidence, 4), head_version=version,
                                meta=i.meta)
                    for i, lab in zip(batch, labels, strict=True)]
            with self.db.write() as s:
                s.add_all(rows)
                s.flush()
                touched = self._count(s, user, [(r.topic, r.time, r.sentiment, 1) for r in rows])
                fired = self._check_alerts(s, user, touched)
            result.ingested += len(rows)
            result.ids += [r.id for r in rows]
            result.alerts += [alert_to_dict(a) for a in fired]
            result.by_topic.update(r.topic for r in rows)
            result.by_sentiment.update(r.sentiment for r in rows)
        result.seconds = time.perf_counter() - start
        log.info("monitor: %d items for %s in %.2f s, %d alerts", result.ingested, user,
                 result.seconds, len(result.alerts))
        return result

    # -- reading --------------------------------------------------------------------------

    def series(self, *, user: str, topic: str | None = None, since: datetime | None = None,
               until: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        """Per topic, one point per bucket from its first to its last (empty ones as zeros):
        ``{"bucket", "negative", "neutral", "positive", "total"}``."""
        w = self.config.bucket_seconds
        q = sa.select(MonitorCount).where(MonitorCount.user_id == user,
                                          MonitorCount.bucket_seconds == w)
        if topic is not None:
            q = q.where(MonitorCount.topic == topic)
        if since is not None:
            q = q.where(MonitorCount.bucket >= bucket_of(_clamp(since), w))
        if until is not None:
            q = q.where(MonitorCount.bucket <= _clamp(until))
        cells: dict[str, dict[datetime, dict[str, int]]] = defaultdict(dict)
        with self.db.read() as s:
            for c in s.scalars(q):
                cells[c.topic].setdefault(c.bucket, dict.fromkeys(SENTIMENTS, 0))[c.sentiment] \
                    += c.count
        out = {}
        for name in sorted(cells):
            points = []
            for b in _span(min(cells[name]), max(cells[name]), w):
                row = cells[name].get(b, dict.fromkeys(SENTIMENTS, 0))
                points.append({"bucket": b, **row, "total": sum(row.values())})
            out[name] = points
        return out

    def alerts(self, *, user: str, topic: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
        """``user``'s alerts, the latest bucket first."""
        q = sa.select(MonitorAlert).where(MonitorAlert.user_id == user)
        if topic is not None:
            q = q.where(MonitorAlert.topic == topic)
        q = q.order_by(MonitorAlert.bucket.desc(), MonitorAlert.id.desc()).limit(limit)
        with self.db.read() as s:
            return [alert_to_dict(a) for a in s.scalars(q)]

    def items(self, *, user: str, limit: int = 50, topic: str | None = None,
              sentiment: str | None = None) -> list[dict[str, Any]]:
        """``user``'s latest items, newest first."""
        q = sa.select(MonitorItem).where(MonitorItem.user_id == user)
        if topic is not None:
            q = q.where(MonitorItem.topic == topic)
        if sentiment is not None:
            q = q.where(MonitorItem.sentiment == sentiment)
        q = q.order_by(MonitorItem.time.desc(), MonitorItem.id.desc()).limit(limit)
        with self.db.read() as s:
            return [item_to_dict(i) for i in s.scalars(q)]

    # -- learning -------------------------------------------------------------------------

    def correct(self, item_id: int, *, user: str, sentiment: str | None = None,
                topic: str | None = None) -> dict[str, Any]:
        """An analyst's labels for item ``item_id``: the item and its counts change at once,
        and the correction is kept to retrain from (``train``)."""
        if sentiment is None and topic is None:
            raise InvalidInputError("Give the item's right sentiment, topic, or both.")
        if sentiment is not None and sentiment not in SENTIMENTS:
            raise InvalidInputError(f"A sentiment is one of {', '.join(SENTIMENTS)}, "
                                    f"not {sentiment!r}.")
        if topic is not None and topic not in self.config.topic_names:
            raise InvalidInputError(f"Unknown topic {topic!r}; the configured topics are "
                                    f"{', '.join(self.config.topic_names)}.")
        with self.db.write() as s:
            item = s.get(MonitorItem, item_id)
            if item is None or item.user_id != user:  # another user's item looks like none
                raise NotFoundError(f"You have no monitored item {item_id}: "
                                    "`dialoop monitor items` lists them.")
            old = (item.topic, item.sentiment)
            new = (topic or item.topic, sentiment or item.sentiment)
            s.add(MonitorCorrection(user_id=user, item_id=item.id, text=item.text,
                                    old_sentiment=old[1], sentiment=new[1], old_topic=old[0],
                                    topic=new[0]))
            if new != old:
                self._count(s, user, [(old[0], item.time, old[1], -1),
                                      (new[0], item.time, new[1], 1)])
            item.topic, item.sentiment, item.corrected = new[0], new[1], True
            row = item_to_dict(item)
        return row | {"was": {"topic": old[0], "sentiment": old[1]}}

    def train(self, *, user: str) -> dict[str, Any]:
        """Retrain ``user``'s sentiment head from their corrections; keep it if the gate
        passes (:mod:`dialoop.monitor.training`). Returns the gate report and the version."""
        with self.db.read() as s:
            rows = s.execute(
                sa.select(MonitorCorrection.item_id, MonitorCorrection.text,
                          MonitorCorrection.sentiment, MonitorCorrection.id)
                .where(MonitorCorrection.user_id == user).order_by(MonitorCorrection.id)).all()
            last = s.scalar(sa.select(sa.func.max(MonitorHead.version))
                            .where(MonitorHead.user_id == user)) or 0
        latest = {item_id: (item_id, text, sentiment) for item_id, text, sentiment, _ in rows}
        corrections = list(latest.values())  # the last word on each item
        if len(corrections) < MIN_CORRECTIONS:
            raise InvalidInputError(f"{len(corrections)} corrected items; retraining needs at "
                                    f"least {MIN_CORRECTIONS}: `dialoop monitor correct` first.")
        current = self.head(user)
        candidate, report = retrain(current, corrections, self.embedder, self._seed_vectors(),
                                    version=last + 1)
        with self.db.write() as s:
            if report.accepted:
                s.execute(sa.update(MonitorHead).where(MonitorHead.user_id == user,
                                                       MonitorHead.status == "active")
                          .values(status="retired"))
            s.add(MonitorHead(user_id=user, version=last + 1, weights=candidate.to_bytes(),
                              status="active" if report.accepted else "rejected",
                              report=report.to_dict()))
        return {"version": last + 1, "previous": current.version,
                "serving": last + 1 if report.accepted else current.version} | report.to_dict()

    def heads(self, *, user: str) -> list[dict[str, Any]]:
        """``user``'s retrained heads with their gate reports, oldest first."""
        with self.db.read() as s:
            rows = s.scalars(sa.select(MonitorHead).where(MonitorHead.user_id == user)
                             .order_by(MonitorHead.version))
            return [{"version": h.version, "status": h.status, "created_at": h.created_at,
                     "report": h.report} for h in rows]

    def head(self, user: str) -> SentimentHead:
        """The sentiment head labelling ``user``'s items: their latest accepted one, else
        the built-in head."""
        active = (MonitorHead.user_id == user, MonitorHead.status == "active")
        with self.db.read() as s:
            version = s.scalar(sa.select(sa.func.max(MonitorHead.version)).where(*active)) or 0
        key = (user if version else "", version)  # the built-in head is everyone's
        if (head := self._heads.get(key)) is not None:
            return head
        if version:
            with self.db.read() as s:
                weights = s.scalar(sa.select(MonitorHead.weights).where(
                    *active, MonitorHead.version == version))
            if weights is None:  # retired by a newer head since the first read
                return self.head(user)
            head = SentimentHead.from_bytes(weights, version)
        else:
            head = self._seed_vectors().builtin_head()
        with self._lock:
            return self._heads.setdefault(key, head)

    # -- internals ------------------------------------------------------------------------

    def _seed_vectors(self) -> SeedVectors:
        with self._lock:
            if self._seeds is None:
                self._seeds = SeedVectors(self.embedder)
            return self._seeds

    def _topic_model(self, user: str) -> TopicModel:
        q = (sa.select(MonitorCorrection.text, MonitorCorrection.topic)
             .where(MonitorCorrection.user_id == user,
                    MonitorCorrection.topic != MonitorCorrection.old_topic)
             .order_by(MonitorCorrection.id))
        with self.db.read() as s:
            taught = [(t, n) for t, n in s.execute(q) if n in self.config.topic_names]
        key = (user if taught else "", len(taught))
        if (model := self._topics.get(key)) is None:
            model = TopicModel(self.config, self.embedder, taught)
            with self._lock:
                model = self._topics.setdefault(key, model)
        return model

    def _count(self, s: Any, user: str,
               changes: list[tuple[str, datetime, str, int]]) -> dict[str, set[datetime]]:
        """Add each (topic, time, sentiment, ±n) to the series; returns the touched buckets."""
        w = self.config.bucket_seconds
        delta: Counter[tuple[str, datetime, str]] = Counter()
        for topic, when, sentiment, n in changes:
            delta[(topic, bucket_of(when, w), sentiment)] += n
        touched: dict[str, set[datetime]] = defaultdict(set)
        for topic, bucket, _ in delta:
            touched[topic].add(bucket)
        existing = {(c.topic, c.bucket, c.sentiment): c for c in s.scalars(
            sa.select(MonitorCount).where(
                MonitorCount.user_id == user, MonitorCount.bucket_seconds == w,
                MonitorCount.topic.in_(list(touched)),
                MonitorCount.bucket.in_({b for bs in touched.values() for b in bs})))}
        for key, n in delta.items():
            if (cell := existing.get(key)) is not None:
                cell.count += n
            else:
                s.add(MonitorCount(user_id=user, bucket_seconds=w, topic=key[0], bucket=key[1],
                                   sentiment=key[2], count=max(n, 0)))
        s.flush()
        return touched

    def _check_alerts(self, s: Any, user: str,
                      touched: dict[str, set[datetime]]) -> list[MonitorAlert]:
        """Evaluate every rule on every touched bucket; record those that fire (once)."""
        if not self.config.rules:
            return []
        w = self.config.bucket_seconds
        reach = max(r.window for r in self.config.rules) + 1
        fired = []
        for topic, buckets in touched.items():
            first = s.scalar(sa.select(sa.func.min(MonitorCount.bucket)).where(
                MonitorCount.user_id == user, MonitorCount.bucket_seconds == w,
                MonitorCount.topic == topic))
            start = max(first, min(buckets) - timedelta(seconds=w * reach))
            span = list(_span(start, max(buckets), w))
            neg, tot = [0] * len(span), [0] * len(span)
            index = {b: i for i, b in enumerate(span)}
            for c in s.scalars(sa.select(MonitorCount).where(
                    MonitorCount.user_id == user, MonitorCount.bucket_seconds == w,
                    MonitorCount.topic == topic, MonitorCount.bucket >= start,
                    MonitorCount.bucket <= max(buckets))):
                tot[index[c.bucket]] += c.count
                neg[index[c.bucket]] += c.count if c.sentiment == "negative" else 0
            seen = {(r, b) for r, b in s.execute(
                sa.select(MonitorAlert.rule, MonitorAlert.bucket).where(
                    MonitorAlert.user_id == user, MonitorAlert.topic == topic,
                    MonitorAlert.bucket.in_(list(buckets))))}
            for bucket in sorted(buckets):
                for rule in self.config.rules:
                    if (rule.name, bucket) in seen:
                        continue
                    if (hit := evaluate(rule, neg, tot, index[bucket])) is not None:
                        alert = MonitorAlert(user_id=user, rule=rule.name, kind=rule.kind,
                                             topic=topic, bucket=bucket,
                                             value=round(hit.value, 4), message=hit.message)
                        s.add(alert)
                        fired.append(alert)
        s.flush()
        return fired


def alert_to_dict(a: MonitorAlert) -> dict[str, Any]:
    return {"id": a.id, "rule": a.rule, "kind": a.kind, "topic": a.topic, "bucket": a.bucket,
            "value": a.value, "message": a.message, "created_at": a.created_at}


def item_to_dict(i: MonitorItem) -> dict[str, Any]:
    return {"id": i.id, "text": i.text, "source": i.source, "time": i.time, "topic": i.topic,
            "sentiment": i.sentiment, "confidence": i.confidence,
            "head_version": i.head_version, "corrected": i.corrected, "meta": i.meta}


def _clamp(when: datetime) -> datetime:
    """``when`` within the times an item can have (see :func:`~dialoop.monitor.read.parse_time`)."""
    return min(max(when, EARLIEST), LATEST)


def _span(first: datetime, last: datetime, seconds: int) -> Iterator[datetime]:
    b = first
    while b <= last:
        yield b
        b += timedelta(seconds=seconds)


def _batches(items: Iterator[ItemIn], n: int) -> Iterator[list[ItemIn]]:
    while batch := list(islice(items, n)):
        yield batch
