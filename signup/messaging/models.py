"""The messages table: every SMS is a row before any provider is called."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from signup.clock import now
from signup.database import BigId, UTCDateTime
from signup.extensions import db


class MessageKind(enum.StrEnum):
    """Why a message is sent."""

    ONBOARDING = "onboarding"
    OPTOUT_CONFIRMATION = "optout_confirmation"
    HELP = "help"


class MessageStatus(enum.StrEnum):
    """Message states; RANK orders the provider-reported ones so callbacks never go backwards."""

    PENDING = "pending"  # due at next_attempt_at, not yet handed to a worker
    QUEUED = "queued"  # a send task has been published
    SENDING = "sending"  # a worker is calling the provider now
    SENT = "sent"  # the provider accepted it
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    UNKNOWN = "unknown"  # a worker died mid-call: may or may not have been sent; for review


class Message(db.Model):  # type: ignore[name-defined]
    """One SMS to one volunteer for one campaign, unique per (volunteer, campaign, kind, round)."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("volunteer_id", "campaign_id", "kind", "round"),
        Index(
            "ix_messages_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'queued')"),
            sqlite_where=text("status IN ('pending', 'queued')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("volunteers.id"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    kind: Mapped[str] = mapped_column(String(24))
    round: Mapped[int] = mapped_column(default=0)
    to_phone: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.PENDING, index=True)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(default=0)
    resends: Mapped[int] = mapped_column(
        default=0, server_default="0"
    )  # carrier failures retried (30003/30008)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sending_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)


class InboundMessage(db.Model):  # type: ignore[name-defined]
    """An SMS a person sent us (a keyword), kept as consent evidence; one row per provider id."""

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("provider", "provider_message_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_message_id: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str | None] = mapped_column(String(24))  # E.164; cleared on erasure
    keyword: Mapped[str | None] = mapped_column(String(24))  # never the free text
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
