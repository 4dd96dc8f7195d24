"""Volunteers, subscriptions and the append-only consent ledger."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from signup.clock import now
from signup.database import BigId, UTCDateTime
from signup.extensions import db


class VolunteerStatus(enum.StrEnum):
    """A volunteer is active while subscribed to at least one campaign."""

    ACTIVE = "active"
    OPTED_OUT = "opted_out"
    IMPORTED = "imported"  # from an organiser's list: no consent here, so no SMS
    ERASED = "erased"  # a tombstone: every personal field removed (DPDP s.12)


class ConsentEventType(enum.StrEnum):
    """Events recorded in the consent ledger."""

    GIVEN = "given"
    WITHDRAWN = "withdrawn"
    REGIVEN = "re_given"
    ERASED = "erased"


class ConsentChannel(enum.StrEnum):
    """How a consent event reached us."""

    MISSED_CALL = "missed_call"
    OPTOUT_CALL = "opt_out_number"
    SMS_KEYWORD = "sms_keyword"
    PROVIDER = "provider"
    ORGANISER = "organiser"


class Volunteer(db.Model):  # type: ignore[name-defined]
    """One person, keyed by E.164 phone, however often and to whichever campaign they call."""

    __tablename__ = "volunteers"
    # The list's last-call sort uses an expression index that a migration makes on PostgreSQL
    # (ix_volunteers_last_call_sort); SQLAlchemy's metadata cannot describe it.
    __table_args__ = (
        Index("ix_volunteers_state_district", "state", "district"),
        Index(
            "ix_volunteers_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
        # Search by the last digits of a number (phone LIKE '%43210').
        Index(
            "ix_volunteers_phone_trgm",
            "phone",
            postgresql_using="gin",
            postgresql_ops={"phone": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    phone: Mapped[str] = mapped_column(String(24), unique=True)
    name: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), default=VolunteerStatus.ACTIVE, index=True)
    call_count: Mapped[int] = mapped_column(default=0)
    first_call_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_call_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state: Mapped[str | None] = mapped_column(String(64))
    district: Mapped[str | None] = mapped_column(String(64))
    pincode: Mapped[str | None] = mapped_column(String(6))
    language: Mapped[str | None] = mapped_column(String(2))
    notes: Mapped[str | None] = mapped_column(Text)
    dnd_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # on India's Do Not Call list
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)


class Subscription(db.Model):  # type: ignore[name-defined]
    """A volunteer's membership of one campaign, with its own opt-out state."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("volunteer_id", "campaign_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("volunteers.id"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=VolunteerStatus.ACTIVE)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawals: Mapped[int] = mapped_column(default=0)


class ConsentEvent(db.Model):  # type: ignore[name-defined]
    """One entry of the append-only consent ledger: rows are inserted, never changed."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("volunteers.id"), index=True)
    # None: a withdrawal of someone in no campaign (imported, never joined)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    event: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(24))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    notice_version: Mapped[int | None] = mapped_column()  # None with no campaign
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Suppression(db.Model):  # type: ignore[name-defined]
    """A keyed hash of an erased person's number: never message it again unless they call."""

    __tablename__ = "suppressions"

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    opted_out: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
