"""The table of conversation summaries (:mod:`dialoop.dialogue.summary`), as an ORM class.

Created by migration ``m011_context_summaries``. A row belongs to one session (and so to
one user); deleting the session deletes its summaries.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dialoop.store.models import Base, utcnow

__all__ = ["ContextSummary"]


class ContextSummary(Base):
    """A summary of the first ``covers`` messages of a session's prompt history."""

    __tablename__ = "context_summaries"
    __table_args__ = (sa.UniqueConstraint("session_id", "kind", "covers",
                                          name="uq_context_summaries_covers"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        sa.ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    covers: Mapped[int]  # messages of the history summarised: the first `covers`
    turns: Mapped[int]  # user turns among them
    kind: Mapped[str] = mapped_column(sa.String(16))  # model | extractive
    text: Mapped[str] = mapped_column(sa.Text)
    seconds: Mapped[float]  # how long it took to make
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
