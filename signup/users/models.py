"""The users table: organisers who log in to the admin."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from signup.clock import now
from signup.database import UTCDateTime
from signup.extensions import db


class Role(enum.StrEnum):
    """What an account may do in the admin."""

    ADMIN = "admin"
    ORGANISER = "organiser"
    VIEWER = "viewer"


class User(db.Model):  # type: ignore[name-defined]
    """An organiser's account; the password is stored only as an Argon2id hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
