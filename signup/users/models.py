"""The users table: organisers who log in to the admin."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from signup.clock import now
from signup.database import UTCDateTime
from signup.extensions import db


class Role(enum.StrEnum):
    """What an account may do in the admin."""

    ADMIN = "admin"
    ORGANISER = "organiser"
    VIEWER = "viewer"


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    """An organiser's account; the password is stored only as an Argon2id hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Stored in the session (see get_id); bumping it ends every copy of every session at once.
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")
    # The admin's language ("en", "hi"); None follows the browser's Accept-Language.
    language: Mapped[str | None] = mapped_column(String(8))

    def get_id(self) -> str:
        """Flask-Login: the session names the account and its epoch (signup.admin.auth)."""
        return f"{self.id}:{self.session_epoch}"

    def end_sessions(self) -> None:
        """Invalidate every session of this account, wherever its cookie was copied."""
        self.session_epoch = (self.session_epoch or 0) + 1

    @property
    def is_active(self) -> bool:
        """Flask-Login: a disabled account cannot log in or keep a session."""
        return bool(self.active)


class UserCampaign(db.Model):  # type: ignore[name-defined]
    """Limits an account to some campaigns; an account with none sees every campaign."""

    __tablename__ = "user_campaigns"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)


class UserState(db.Model):  # type: ignore[name-defined]
    """Limits an account to some states; an account with none sees every state."""

    __tablename__ = "user_states"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(64), primary_key=True)
