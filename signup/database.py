"""Column types and statements that behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, TypeDecorator
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from signup.extensions import db


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused; use signup.clock.now()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def dialect_name() -> str:
    """The name of the current database's dialect: 'postgresql' or 'sqlite'."""
    return db.session.get_bind().dialect.name


def insert(table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for the current dialect, which supports ON CONFLICT on both backends."""
    if dialect_name() == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


BigId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit key on PostgreSQL that is still SQLite's auto-incrementing rowid."""
