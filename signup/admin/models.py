"""The admin's audit log: who did what to personal data, and when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from signup.clock import now
from signup.database import BigId, UTCDateTime
from signup.extensions import db


class AuditEntry(db.Model):  # type: ignore[name-defined]
    """One audited action (export, edit, opt-out, erase, login)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")  # filters or fields, never a number
    row_count: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)


class ImportBatch(db.Model):  # type: ignore[name-defined]
    """An uploaded list between its preview and the organiser's confirmation."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    filename: Mapped[str] = mapped_column(String(200))
    rows: Mapped[str] = mapped_column(Text)  # the checked rows, as JSON
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    merged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
