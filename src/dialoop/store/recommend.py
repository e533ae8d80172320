"""The tables of recommendation (:mod:`dialoop.recommend`), as ORM classes.

Created by migration ``m013_recommend``. The catalogue (``rec_items``) is shared by
every user, like global knowledge; each event (``rec_events``) belongs to one user and
is read back only for that user. ``rec_models`` records the trained models, whose
arrays live in files under ``DIALOOP_HOME/recommend/``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dialoop.store.models import Base, utcnow

__all__ = ["RecEvent", "RecItem", "RecModel"]


class RecItem(Base):
    """One item of the catalogue, with its text embedding."""

    __tablename__ = "rec_items"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(sa.String(200), unique=True)  # the catalogue's own id
    title: Mapped[str] = mapped_column(sa.String(300))
    text: Mapped[str] = mapped_column(sa.Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)  # name → [values]
    vector: Mapped[bytes] = mapped_column(sa.LargeBinary)  # float32 (D,), L2-normalised
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecEvent(Base):
    """One interaction of a user with an item: a view, a rating, a "shown" impression, …"""

    __tablename__ = "rec_events"
    __table_args__ = (sa.Index("ix_rec_events_user_time", "user_id", "time"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(sa.String(128))
    item_id: Mapped[int] = mapped_column(sa.ForeignKey("rec_items.id", ondelete="CASCADE"),
                                         index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    value: Mapped[float | None]
    weight: Mapped[float]  # dialoop.recommend.model.event_weight of kind and value
    time: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecModel(Base):
    """A trained model: its file, what it was trained on and whether it serves."""

    __tablename__ = "rec_models"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(unique=True)
    status: Mapped[str] = mapped_column(sa.String(16))  # serving | retired | rejected
    path: Mapped[str] = mapped_column(sa.String(500))
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
