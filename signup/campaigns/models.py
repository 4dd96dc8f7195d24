"""The campaigns table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
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
    notice_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    def __repr__(self) -> str:
        return f"<Campaign {self.slug}>"
