"""Column types and statements that behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    TypeDecorator,
    any_,
    bindparam,
    case,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError

from signup.config import REPLICA_BIND
from signup.extensions import db
from signup.logs import event

log = logging.getLogger(__name__)


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


# Row locks taken to change non-key columns: FOR NO KEY UPDATE still serialises writers but,
# unlike FOR UPDATE, does not block the FOR KEY SHARE locks of other transactions' foreign-key
# checks (FOR UPDATE there deadlocked call processing against concurrent sends).
NO_KEY_UPDATE = {"key_share": True}

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit key on PostgreSQL that is still SQLite's auto-incrementing rowid."""


def local_bucket(column: Any, unit: str, zone: ZoneInfo, now: datetime) -> ColumnElement[str]:
    """The local hour or day of a UTC timestamp as text ('2026-11-21 14' or '2026-11-21')."""
    fmt = {"hour": ("YYYY-MM-DD HH24", "%Y-%m-%d %H"), "day": ("YYYY-MM-DD", "%Y-%m-%d")}[unit]
    if dialect_name() == "postgresql":
        return func.to_char(func.timezone(zone.key, column), fmt[0])
    offset = now.astimezone(zone).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    return func.strftime(fmt[1], column, f"{minutes:+d} minutes")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_SQL = "'1970-01-01 00:00:00+00'::timestamptz"

# Indexes on expressions, made by migrations and invisible to SQLAlchemy's metadata: autogenerate
# and the models-vs-migrations test leave them alone (a test checks their definition instead).
EXPRESSION_INDEXES = frozenset({"ix_volunteers_last_call_sort"})
# The export's cells, generated columns that PostgreSQL writes with each volunteer row and only
# the export reads (signup.volunteers.pgcopy); kept out of the model so no ORM query loads them.
STORED_CELLS = frozenset({"csv_head", "csv_tail"})


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's filter: skip the expression indexes and the stored export cells above."""
    if type_ == "index":
        return name not in EXPRESSION_INDEXES
    return not (type_ == "column" and reflected and compare_to is None and name in STORED_CELLS)


def last_call_sort_key(column: Any) -> ColumnElement[datetime]:
    """coalesce(last_call_at, epoch): on PostgreSQL with the epoch as a literal, so that the
    expression index ix_volunteers_last_call_sort matches it in every plan."""
    if dialect_name() == "postgresql":
        return func.coalesce(column, literal_column(EPOCH_SQL))
    return func.coalesce(column, EPOCH)


def earliest(current: Any, candidate: Any) -> ColumnElement[Any]:
    """The earlier of a nullable column and a new value, for upserts (NULL counts as unset)."""
    return case((current.is_(None), candidate), (candidate < current, candidate), else_=current)


def latest(current: Any, candidate: Any) -> ColumnElement[Any]:
    """The later of a nullable column and a new value, for upserts (NULL counts as unset)."""
    return case((current.is_(None), candidate), (candidate > current, candidate), else_=current)


def insert_many(
    table: Any, rows: list[dict[str, Any]]
) -> tuple[postgresql.Insert | sqlite.Insert, dict[str, Any] | list[dict[str, Any]]]:
    """An INSERT of many rows and its parameters, for upserts in batches.

    On PostgreSQL the rows travel as one array per column, unnested by the server, so the
    statement's text (and psycopg's and PostgreSQL's parse of it) is the same for any number
    of rows; elsewhere it is a plain executemany. All rows must have the same keys.
    """
    columns = list(rows[0])
    stmt = insert(table)
    if dialect_name() != "postgresql":
        return stmt, rows
    source = select(
        *(
            func.unnest(
                bindparam(f"{name}__rows", type_=postgresql.ARRAY(table.c[name].type))
            ).label(name)
            for name in columns
        )
    )
    params = {f"{name}__rows": [row[name] for row in rows] for name in columns}
    return stmt.from_select(columns, source), params


def id_in(column: Any, ids: list[int]) -> ColumnElement[bool]:
    """column IN ids: on PostgreSQL as `= ANY(:ids)`, one array parameter for a whole batch."""
    if dialect_name() == "postgresql":
        return column == any_(bindparam("ids", ids, type_=postgresql.ARRAY(BigInteger())))
    return column.in_(ids)


class _Reads:
    """Reads that may lag a little: the admin's list and dashboard.

    They go to the read replica when DATABASE_REPLICA_URL is set (the session's connection to
    that engine), else to the primary like everything else. What an admin just changed, and
    every write, stays on the primary: the volunteer page, actions, imports, the audit log.
    A replica that fails (down, or a query cancelled by its recovery) is skipped for
    REPLICA_RETRY_SECONDS and the read goes to the primary: the session is rolled back first,
    so use these only in requests that have nothing of their own to commit.
    """

    def __init__(self) -> None:
        self._down_until: dict[int, float] = {}

    def _bind(self) -> Any:
        engine = db.engines.get(REPLICA_BIND)
        if engine is None or self._down_until.get(id(engine), 0.0) > time.monotonic():
            return None
        return engine

    def _run(self, method: str, statement: Any) -> Any:
        run = getattr(db.session, method)
        engine = self._bind()
        if engine is None:
            return run(statement)
        try:
            return run(statement, bind_arguments={"bind": engine})
        except OperationalError as exc:
            db.session.rollback()
            self._down_until[id(engine)] = time.monotonic() + REPLICA_RETRY_SECONDS
            event(
                log,
                logging.WARNING,
                "replica.unavailable",
                error=type(exc.orig).__name__,
                retry_in=REPLICA_RETRY_SECONDS,
            )
            return run(statement)

    def execute(self, statement: Any) -> Any:
        """Session.execute on the replica (or the primary)."""
        return self._run("execute", statement)

    def scalar(self, statement: Any) -> Any:
        """Session.scalar on the replica (or the primary)."""
        return self._run("scalar", statement)

    def scalars(self, statement: Any) -> Any:
        """Session.scalars on the replica (or the primary)."""
        return self._run("scalars", statement)


REPLICA_RETRY_SECONDS = 30.0
reads = _Reads()
