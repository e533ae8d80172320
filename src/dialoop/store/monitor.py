"""The tables of opinion and sentiment monitoring (:mod:`dialoop.monitor`), as ORM classes.

Created by migration ``m012_monitor``. Every row belongs to one user (``user_id``): a
user's items, counts, alerts, corrections and classifier heads are theirs alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dialoop.store.models import Base, utcnow

__all__ = ["MonitorAlert", "MonitorCorrection", "MonitorCount", "MonitorHead", "MonitorItem"]


class MonitorItem(Base):
    """One text that came in, with the topic and sentiment it was given."""

    __tablename__ = "monitor_items"
    __table_args__ = (sa.Index("ix_monitor_items_user_time", "user_id", "time"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(sa.String(128))
    text: Mapped[str] = mapped_column(sa.Text)
    source: Mapped[str | None] = mapped_column(sa.String(200))
    time: Mapped[datetime]  # when the text was written (the file's), else when it came in
    topic: Mapped[str] = mapped_column(sa.String(100))
    sentiment: Mapped[str] = mapped_column(sa.String(16))  # positive | neutral | negative
    confidence: Mapped[float]  # the head's probability of ``sentiment``
    head_version: Mapped[int]  # 0: the built-in head
    corrected: Mapped[bool] = mapped_column(default=False)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the input's other fields
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MonitorCount(Base):
    """How many items of a topic had a sentiment in one time bucket: the time series."""

    __tablename__ = "monitor_counts"
    __table_args__ = (sa.UniqueConstraint("user_id", "bucket_seconds", "topic", "bucket",
                                          "sentiment", name="uq_monitor_counts_cell"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(sa.String(128))
    bucket_seconds: Mapped[int]  # the bucket width the series was counted in
    topic: Mapped[str] = mapped_column(sa.String(100))
    bucket: Mapped[datetime]  # the bucket's start
    sentiment: Mapped[str] = mapped_column(sa.String(16))
    count: Mapped[int]


class MonitorAlert(Base):
    """An alert rule fired on a topic's bucket (at most once per rule, topic and bucket)."""

    __tablename__ = "monitor_alerts"
    __table_args__ = (sa.UniqueConstraint("user_id", "rule", "topic", "bucket",
                                          name="uq_monitor_alerts_firing"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    rule: Mapped[str] = mapped_column(sa.String(100))
    kind: Mapped[str] = mapped_column(sa.String(16))  # threshold | rate | zscore
    topic: Mapped[str] = mapped_column(sa.String(100))
    bucket: Mapped[datetime]
    value: Mapped[float]  # what the rule measured (a count, a share, a ratio, a z-score)
    message: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MonitorCorrection(Base):
    """An analyst's correction of an item's labels: the supervision for retraining."""

    __tablename__ = "monitor_corrections"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    item_id: Mapped[int] = mapped_column(
        sa.ForeignKey("monitor_items.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    old_sentiment: Mapped[str] = mapped_column(sa.String(16))
    sentiment: Mapped[str] = mapped_column(sa.String(16))
    old_topic: Mapped[str] = mapped_column(sa.String(100))
    topic: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MonitorHead(Base):
    """A trained sentiment head (logistic regression weights) and its gate report."""

    __tablename__ = "monitor_heads"
    __table_args__ = (sa.UniqueConstraint("user_id", "version", name="uq_monitor_heads_version"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(sa.String(128))
    version: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(16))  # active | retired | rejected
    weights: Mapped[bytes] = mapped_column(sa.LargeBinary)  # .npz, no pickle
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
