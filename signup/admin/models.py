"""The admin's audit log: who did what to personal data, and when."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Text
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


class ImportStatus(enum.StrEnum):
    """Where an uploaded list is: read by the import task off the request path, then previewed."""

    WAITING = "waiting"  # stored, the task not yet started
    READING = "reading"  # the task is parsing it
    READY = "ready"  # checked rows stored: preview, then confirm
    FAILED = "failed"  # refused; `error` says why in one line


class ImportBatch(db.Model):  # type: ignore[name-defined]
    """An uploaded list: its bytes until the task has read them, then its rows until confirmed."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    filename: Mapped[str] = mapped_column(String(200))
    rows: Mapped[str] = mapped_column(Text)  # the checked rows, as JSON
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    merged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(
        String(16), default=ImportStatus.WAITING, server_default=ImportStatus.READY
    )
    error: Mapped[str | None] = mapped_column(String(300))
    # The uploaded file, kept only until the task has read it; never loaded with the batch.
    upload: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    size_bytes: Mapped[int] = mapped_column(default=0, server_default="0")
    rows_read: Mapped[int] = mapped_column(default=0, server_default="0")
    rows_total: Mapped[int | None] = mapped_column()  # an estimate, for the progress bar
    reading_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
