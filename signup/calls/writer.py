"""Group commit for the voice webhooks: one INSERT for the calls of concurrent requests.

Each web process keeps one autocommit connection for its webhooks. A request appends its
`calls` row to a shared list; if no request is writing, it becomes the leader: it takes every
row waiting (up to `max_rows`), inserts them with one
`INSERT … SELECT … FROM jsonb_array_elements(…) ON CONFLICT (provider, provider_call_id)
DO NOTHING RETURNING`, and wakes each request of the batch with its own result (created, or a
duplicate). Rows that arrived meanwhile wait; the leader hands the lead to the first of them,
which writes them all. Alone, a request writes its own row with no thread hand-off at all.

Every answer still waits for its own row's durable commit (synchronous commit): PostgreSQL just
commits, and flushes its WAL, once per batch instead of once per call.

Failures are per call: a request whose row was not committed gets CallNotRecordedError and
spools its call. A connection found dead is replaced once per batch. A statement error in a
batch (one odd row) is retried row by row, so only that row fails. A request that waits longer
than `timeout` gives up and spools (a later commit of the same row is harmless: the spool's
replay is ON CONFLICT too). State is reset on first use in a new process, so gunicorn's forked
workers each get their own list and connection.
"""

from __future__ import annotations

import json
import logging
import operator
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import ConnStatus, DiagnosticField, ExecStatus
from sqlalchemy import String
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.types import TypeEngine

from signup.calls.models import Call
from signup.greenlets import cooperative
from signup.logs import event

log = logging.getLogger(__name__)
_STATEMENT = b"signup_insert_calls"  # prepared on each writer connection


class CallNotRecordedError(Exception):
    """The call was not committed (database error, or no answer in time): spool it."""


def insert_sql(columns: Sequence[str]) -> sql.Composed:
    """The multi-row INSERT: the rows as one JSON array of arrays, values in `columns` order.

    One text parameter ($1) keeps the statement prepared once and costs far less to send than
    an array per column; rows as arrays rather than objects cost a third less to encode. Text
    goes into the string columns uncast, so an over-long value fails as an assignment does
    instead of being cut short; other columns are cast to their own type.
    """
    table = Call.__table__
    values = sql.SQL(", ").join(_element(i, table.c[name].type) for i, name in enumerate(columns))
    names = sql.SQL(", ").join(sql.Identifier(name) for name in columns)
    return sql.SQL(
        "INSERT INTO {table} ({names}) SELECT {values} "
        "FROM jsonb_array_elements($1::jsonb) AS row "
        "ON CONFLICT (provider, provider_call_id) DO NOTHING "
        "RETURNING provider, provider_call_id"
    ).format(table=sql.Identifier(table.name), names=names, values=values)


def _element(index: int, type_: TypeEngine[Any]) -> sql.Composable:
    """Element `index` of a JSON row: text for a string column, else cast to its type."""
    text = sql.SQL("(row ->> {})").format(sql.Literal(index))
    if isinstance(type_, String):
        return text
    return sql.SQL("CAST({} AS {})").format(
        text, sql.SQL(type_.compile(dialect=postgresql.dialect()))
    )


def _json_value(value: object) -> object:
    """Times as ISO 8601 with their offset, which PostgreSQL reads as timestamptz."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass(eq=False, slots=True)
class _Waiter:
    """One request's row; `wake` is released when its result is set or the lead is handed over."""

    row: dict[str, Any]
    wake: threading.Lock = field(default_factory=threading.Lock)
    created: bool = False
    error: BaseException | None = None
    settled: bool = False
    leads: bool = False

    @property
    def key(self) -> tuple[str, str]:
        """The row's identity for ON CONFLICT."""
        return (self.row["provider"], self.row["provider_call_id"])


class CallWriter:
    """Commits concurrent webhooks' rows together, leader/follower style, one per process."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        columns: Sequence[str],
        *,
        max_rows: int = 100,
        timeout: float = 5.0,
    ) -> None:
        self._connect = connect
        self._columns = tuple(columns)
        self._values = operator.itemgetter(*self._columns)  # a row's values, in column order
        self._max_rows = max_rows
        self._timeout = timeout
        self._pid: int | None = None
        self._reset_lock = threading.Lock()
        self._mutex = threading.Lock()
        self._pending: list[_Waiter] = []
        self._leading = False
        self._conn: psycopg.Connection[Any] | None = None

    def record(self, row: dict[str, Any]) -> bool:
        """Commit one row before returning; True when new, False for a known call id.

        Raises CallNotRecordedError when the database refused it or gave no answer in time.
        """
        if self._pid != os.getpid():
            self._reset()
        waiter = _Waiter(row)
        waiter.wake.acquire()
        with self._mutex:
            self._pending.append(waiter)
            leads = waiter.leads = not self._leading
            self._leading = True
        if not leads and not self._await(waiter):
            raise CallNotRecordedError(f"no commit within {self._timeout} s")
        if not waiter.settled:  # the lead was handed to us
            self._lead()
        if waiter.error is not None:
            raise CallNotRecordedError(type(waiter.error).__name__) from waiter.error
        return waiter.created

    def _await(self, waiter: _Waiter) -> bool:
        """Wait to be served or handed the lead; False when the wait timed out."""
        if waiter.wake.acquire(timeout=self._timeout):
            return True
        with self._mutex:
            if waiter.leads:  # handed the lead just as the wait ended: take it
                waiter.wake.acquire()
                return True
            if waiter in self._pending:
                self._pending.remove(waiter)
        return False  # dropped from the list, or in a batch being written: spool it

    def _reset(self) -> None:
        """First use in this process (or after a fork): forget the parent's list and connection."""
        with self._reset_lock:
            if self._pid == os.getpid():
                return
            self._mutex = threading.Lock()
            self._pending = []
            self._leading = False
            self._conn = None  # a forked copy: psycopg never closes it from the child
            self._pid = os.getpid()

    def _lead(self) -> None:
        """Write what is waiting, then hand the lead to the first row that came meanwhile."""
        with self._mutex:
            batch = self._pending[: self._max_rows]
            del self._pending[: self._max_rows]
        try:
            self._write(batch)
        except Exception as exc:  # never leave a request waiting
            event(
                log, logging.ERROR, "call_writer.failed", rows=len(batch), error=type(exc).__name__
            )
            _settle(batch, exc)
        finally:
            with self._mutex:
                successor = self._pending[0] if self._pending else None
                if successor is None:
                    self._leading = False
                else:
                    successor.leads = True
            if successor is not None:
                successor.wake.release()

    def _write(self, batch: list[_Waiter]) -> None:
        """Insert the batch's distinct rows; the first request per call id owns its result."""
        owners: dict[tuple[str, str], _Waiter] = {}
        for waiter in batch:
            owners.setdefault(waiter.key, waiter)
        try:
            created = self._insert([owner.row for owner in owners.values()])
        except psycopg.OperationalError as exc:
            event(
                log, logging.ERROR, "call_writer.failed", rows=len(batch), error=type(exc).__name__
            )
            _settle(batch, exc)
            return
        except psycopg.Error as exc:
            if len(owners) == 1:
                event(log, logging.ERROR, "call_writer.refused", error=type(exc).__name__)
                _settle(batch, exc)
                return
            created = set()
            for key, owner in owners.items():  # isolate the odd row
                try:
                    created |= self._insert([owner.row])
                except psycopg.Error as row_exc:
                    event(log, logging.ERROR, "call_writer.refused", error=type(row_exc).__name__)
                    for waiter in batch:
                        if waiter.key == key:
                            waiter.error = row_exc
        for waiter in batch:
            waiter.created = owners[waiter.key] is waiter and waiter.key in created
        _settle(batch, None)

    def _insert(self, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
        """One autocommit INSERT of `rows`; a dead connection is replaced and tried once more.

        Runs the prepared statement through libpq directly (PQexecPrepared): one call that
        releases the GIL for the whole round trip, where psycopg's execute() would take and
        release it several times and parse and adapt the query again in Python.
        """
        payload = json.dumps(list(map(self._values, rows)), default=_json_value).encode()
        for attempt in (1, 2):
            conn = self._connection()
            try:
                result = _exec_prepared(conn.pgconn, _STATEMENT, [payload], self._timeout)
            except psycopg.OperationalError:
                result = None  # the connection broke under the cooperative path
            if result is not None and result.status == ExecStatus.TUPLES_OK:
                return {
                    (
                        (result.get_value(i, 0) or b"").decode(),
                        (result.get_value(i, 1) or b"").decode(),
                    )
                    for i in range(result.ntuples)
                }
            if result is not None and conn.pgconn.status == ConnStatus.OK:
                raise _error(result)  # a statement error: the connection itself is fine
            self._discard()
            event(log, logging.WARNING, "call_writer.reconnect", attempt=attempt)
            if attempt == 2:
                raise psycopg.OperationalError("the connection to the database was lost")
        raise AssertionError("unreachable")

    def _connection(self) -> psycopg.Connection[Any]:
        """This process's connection, made (and the INSERT prepared on it) when there is none."""
        if self._conn is None or self._conn.closed:
            conn = self._connect()
            prepared = conn.pgconn.prepare(_STATEMENT, insert_sql(self._columns).as_bytes(conn))
            if prepared.status != ExecStatus.COMMAND_OK:
                conn.close()
                raise _error(prepared)
            self._conn = conn
        return self._conn

    def _discard(self) -> None:
        """Drop a broken connection; the next write makes a new one."""
        if self._conn is not None:
            self._conn.close()
        self._conn = None


def _exec_prepared(
    pgconn: psycopg.pq.abc.PGconn, name: bytes, params: list[bytes], timeout: float
) -> psycopg.pq.abc.PGresult:
    """PQexecPrepared, or under gevent the same without blocking the worker's other requests.

    gevent's worker runs every request of a process on one thread: libpq's blocking call would
    stall them all for the round trip, so there the query is sent and its answer awaited on
    the socket through gevent (wait_read/wait_write, with the writer's timeout). With threads,
    one blocking call releases the GIL once.
    """
    if not cooperative():
        return pgconn.exec_prepared(name, params)
    from gevent.socket import wait_read, wait_write

    lost = psycopg.OperationalError("the database did not answer in time")
    pgconn.send_query_prepared(name, params)
    while pgconn.flush():
        wait_write(pgconn.socket, timeout, lost)
    result = None
    while True:
        pgconn.consume_input()
        if pgconn.is_busy():
            wait_read(pgconn.socket, timeout, lost)
            continue
        got = pgconn.get_result()
        if got is None:
            break
        result = got
    if result is None:
        raise psycopg.OperationalError("the connection to the database was lost")
    return result


def _error(result: psycopg.pq.abc.PGresult) -> psycopg.Error:
    """The psycopg exception for a failed result, by its SQLSTATE (DataError, QueryCanceled, …)."""
    sqlstate = (result.error_field(DiagnosticField.SQLSTATE) or b"").decode()
    message = (result.error_message or b"").decode(errors="replace").strip()
    try:
        return psycopg.errors.lookup(sqlstate)(message)
    except KeyError:
        return psycopg.DatabaseError(message)


def _settle(batch: list[_Waiter], error: BaseException | None) -> None:
    """Give each unsettled request of the batch its result (`error` unless it has its own)."""
    for waiter in batch:
        if waiter.settled:
            continue
        if error is not None and waiter.error is None:
            waiter.error = error
        waiter.settled = True
        if waiter.wake.locked():  # held since the request queued; a follower waits on it
            waiter.wake.release()


def connect(
    url: URL, connect_args: Mapping[str, Any], statement_timeout_ms: int = 2000
) -> psycopg.Connection[Any]:
    """A new autocommit connection to the engine's database, made outside its pool.

    Outside the pool, so that a forked process never picks up its parent's pooled connections;
    with the engine's connect arguments (timeout, application name). The statement timeout
    bounds how long a stuck database can hold the webhooks waiting.
    """
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    # A peer gone silent mid-write (no RST) drops the connection after 3 s, not minutes.
    conn = psycopg.connect(conninfo, autocommit=True, **{"tcp_user_timeout": 3000, **connect_args})
    conn.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
    return conn
