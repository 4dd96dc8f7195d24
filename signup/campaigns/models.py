"""The campaigns table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from signup.clock import now
from signup.database import UTCDateTime
from signup.extensions import db


class Campaign(db.Model):  # type: ignore[name-defined]
    """A cause people join by a missed call to its number."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    number: Mapped[str] = mapped_column(String(20), unique=True)
    optout_number: Mapped[str | None] = mapped_column(String(20), unique=True)
    language: Mapped[str] = mapped_column(String(2), default="en")
    sms_text: Mapped[str | None] = mapped_column(Text)
    optout_text: Mapped[str | None] = mapped_column(Text)
    help_text: Mapped[str | None] = mapped_column(Text)
    dlt_entity_id: Mapped[str | None] = mapped_column(String(32))
    dlt_header: Mapped[str | None] = mapped_column(String(16))
    quiet_hours: Mapped[str | None] = mapped_column(String(16))  # overrides SMS_QUIET_HOURS
    notice_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    def __repr__(self) -> str:
        return f"<Campaign {self.slug}>"


class DltTemplate(db.Model):  # type: ignore[name-defined]
    """A content template registered on India's DLT platform for one kind of message."""

    __tablename__ = "dlt_templates"
    __table_args__ = (UniqueConstraint("campaign_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    kind: Mapped[str] = mapped_column(String(24))
    template_id: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class CampaignNotice(db.Model):  # type: ignore[name-defined]
    """Each version of the notice (the onboarding text) a volunteer consents to."""

    __tablename__ = "campaign_notices"
    __table_args__ = (UniqueConstraint("campaign_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    version: Mapped[int] = mapped_column()
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Blackout(db.Model):  # type: ignore[name-defined]
    """A period with no SMS for a campaign, e.g. the 48-hour silence before a poll."""

    __tablename__ = "blackouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(200))
