"""The call log, which is also the outbox that the relay drains."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from signup.clock import now
from signup.database import BigId, UTCDateTime
from signup.extensions import db


class CallState(enum.StrEnum):
    """Where a call is in processing: pending -> queued -> done (or failed after retries)."""

    PENDING = "pending"
    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"


class CallOutcome(enum.StrEnum):
    """What processing a call did."""

    JOINED = "joined"
    REJOINED = "rejoined"
    REPEAT = "repeat"
    OPTED_OUT = "opted_out"
    ALREADY_OPTED_OUT = "already_opted_out"
    NOT_A_VOLUNTEER = "not_a_volunteer"
    UNROUTED = "unrouted"
    NO_CALLER = "no_caller"
    FLOODING = "flooding"
    SUPERSEDED = "superseded"  # a join made before a withdrawal already on record: no effect


class Call(db.Model):  # type: ignore[name-defined]
    """One inbound call as the provider reported it, recorded before we answer."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("provider", "provider_call_id"),
        Index("ix_calls_caller_received_at", "caller", "received_at"),
        Index(
            "ix_calls_unprocessed",
            "id",
            postgresql_where=text("state IN ('pending', 'queued')"),
            sqlite_where=text("state IN ('pending', 'queued')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_call_id: Mapped[str] = mapped_column(String(64))
    from_raw: Mapped[str | None] = mapped_column(String(64))
    to_raw: Mapped[str | None] = mapped_column(String(64))
    caller: Mapped[str | None] = mapped_column(String(20))
    caller_kind: Mapped[str] = mapped_column(String(16))
    called: Mapped[str | None] = mapped_column(String(20))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=CallState.PENDING)
    outcome: Mapped[str | None] = mapped_column(String(24))
    attempts: Mapped[int] = mapped_column(default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
