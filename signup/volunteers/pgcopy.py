"""The volunteers CSV written by PostgreSQL: COPY ... TO STDOUT, split over two connections.

Measured at 1M volunteers (docs/benchmarks.md) the time was in the PostgreSQL backend, not in
Python: an ordered string_agg per volunteer, to_char and the formula-safety expressions. So:

* each volunteer's campaigns are one bit_or of per-campaign bits over `subscriptions`, and the
  `;`-joined, formula-safe slug list is looked up by that bitmask in an array built here;
* the formula check reads one character code (`ascii`) instead of `left(...) IN (...)`;
* the ids are cut into segments copied by two connections at once (both backends busy on two
  cores) that share one snapshot; the segments are handed on strictly in id order, each
  connection reading at most READ_AHEAD blocks ahead, so memory stays flat;
* rows are read with libpq's own calls (one CopyData message per row) and handed on in blocks of
  about BLOCK bytes, not one Python object per row through every layer above.

Most of what was left was PostgreSQL formatting the cells: times as ISO 8601 in the zone, the
formula check and quoting of text. So each volunteer row stores its cells already formatted,
in two generated columns that PostgreSQL writes with the row (migration d41e7c9b2a60):
`csv_head` is `phone,name,status,` and `csv_tail` `,call_count,…,language` and a newline, in
the zone signup_csv_zone() names. When SIGNUP_TIMEZONE is that zone, each line is csv_head,
the campaigns cell and csv_tail joined, copied as one binary text column (a CSV COPY would
quote the line again); in any other zone the cells are formatted at export time as before.
The stored cells hold the volunteer's global status, counts and times: an account limited to
some campaigns sees those worked out from its campaigns alone (Access.derived), so its export
is formatted at export time too.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import queue
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from select import select as select_fds
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.pq import ExecStatus
from psycopg.pq.abc import PGconn, PGresult
from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.sql.expression import Grouping

from signup.campaigns.models import Campaign
from signup.extensions import db
from signup.volunteers.export import FORMULA_PREFIXES, Derived, safe_cell
from signup.volunteers.models import Subscription, Volunteer

BLOCK = 256 * 1024  # bytes handed on at a time
SEGMENT = 32_768  # volunteer ids per COPY statement when two connections share the work
STREAMS = 2  # connections copying at once (the machine has two cores)
READ_AHEAD = 24  # blocks a connection may hold ahead of the writer (about 6 MiB)
MASK_CAMPAIGNS = 8  # up to this many campaigns, slug lists are looked up by bitmask
FAST_FROM = datetime(1970, 1, 1, tzinfo=UTC)  # times given a known offset suffix: from …
FAST_UNTIL = datetime(2100, 1, 1, tzinfo=UTC)  # … until
POLL = 0.1  # seconds between checks that a reader is still wanted
FORMULA_CODES = [ord(prefix) for prefix in FORMULA_PREFIXES]
BINARY_HEADER = 19  # signature, flags and extension length before a binary COPY's first row
BINARY_FRAME = 6  # field count and field length before each row's one column

Block = tuple[int, bytes]  # rows in the block, the CSV bytes


class StoppedError(Exception):
    """The export was abandoned (the client went away): readers stop."""


def copy_export(
    condition: ColumnElement[bool],
    timezone: str,
    seen: ColumnElement[bool] | None = None,
    derived: Derived | None = None,
) -> Iterator[Block]:
    """The CSV rows (no header) of the volunteers matching `condition`, in id order, in blocks.

    `seen` (on Campaign.id) limits the campaigns column to the asking account's campaigns;
    `derived` gives the status, counts and times it sees (the row's own by default).
    """
    derived = derived or Derived.stored()
    bind = db.session.get_bind()
    if isinstance(bind, Engine) and not _has_written():
        yield from _parallel(bind, condition, timezone, seen, derived)
        return
    # Rows this transaction wrote are invisible to other connections: copy on this one alone.
    raw = db.session.connection().connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    _settings(raw, timezone)
    export = Export(raw, bind.dialect, condition, timezone, seen, derived)
    yield from read_copy(raw, export.sql(None, None), None, export.frame)


def _has_written() -> bool:
    """True when the session's transaction has written rows (it has a transaction id)."""
    return bool(db.session.scalar(text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")))


def _begin(raw: psycopg.Connection[Any], timezone: str, snapshot: str | None) -> None:
    """Start a read-only repeatable-read transaction, on `snapshot` when given, in `timezone`."""
    raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    if snapshot is not None:
        raw.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    _settings(raw, timezone)


def _settings(raw: psycopg.Connection[Any], timezone: str) -> None:
    """Times in `timezone`, written in ISO style (sql_time relies on it), for this transaction.

    No JIT: a segment's plan is cheap to run, and compiling it again for each segment is not.
    """
    raw.execute(
        "SELECT set_config('TimeZone', %s, true), set_config('DateStyle', 'ISO', true),"
        " set_config('jit', 'off', true)",
        [timezone],
    )


def _parallel(
    engine: Engine,
    condition: ColumnElement[bool],
    timezone: str,
    seen: ColumnElement[bool] | None,
    derived: Derived,
) -> Iterator[Block]:
    """Copy id segments on STREAMS connections that share a snapshot; yield them in id order."""
    pooled = [engine.raw_connection() for _ in range(STREAMS)]
    raws: list[psycopg.Connection[Any]] = []
    for connection in pooled:
        assert isinstance(connection.driver_connection, psycopg.Connection)
        raws.append(connection.driver_connection)
    stop = threading.Event()
    readers: list[Reader] = []
    finished = False
    try:
        first = raws[0]
        _begin(first, timezone, None)
        snapshot = first.execute("SELECT pg_export_snapshot()").fetchone()
        assert snapshot is not None
        for other in raws[1:]:
            _begin(other, timezone, str(snapshot[0]))
        export = Export(first, engine.dialect, condition, timezone, seen, derived)
        low, high = first.execute("SELECT min(id), max(id) FROM volunteers").fetchone() or (0, 0)
        queries = [export.sql(after, upto) for after, upto in segments(low, high)]
        readers = [
            Reader(raw, queries[i :: len(raws)], stop, export.frame)
            for i, raw in enumerate(raws[: len(queries)])
        ]
        for reader in readers:
            reader.start()
        for i in range(len(queries)):
            yield from readers[i % len(readers)].segment()
        finished = True
    finally:
        stop.set()
        for reader in readers:
            reader.join()
        for connection in pooled:
            if finished:
                connection.close()  # rolled back and returned to the pool
            else:
                connection.invalidate()  # maybe mid-COPY: closed, never reused


def segments(low: int | None, high: int | None) -> list[tuple[int | None, int | None]]:
    """Id ranges (after, up to and including) of SEGMENT ids covering low..high; open ends."""
    if low is None or high is None:
        return []
    cuts = list(range(low - 1 + SEGMENT, high, SEGMENT))
    bounds: list[int | None] = [None, *cuts, None]
    return list(itertools.pairwise(bounds))


class Export:
    """One export's COPY statements: its filters, zone and campaigns, read once."""

    def __init__(
        self,
        raw: psycopg.Connection[Any],
        dialect: Dialect,
        condition: ColumnElement[bool],
        timezone: str,
        seen: ColumnElement[bool] | None = None,
        derived: Derived | None = None,
    ) -> None:
        self.raw = raw
        self.dialect = dialect
        self.condition = condition
        self.timezone = timezone
        self.derived = derived or Derived.stored()
        self.campaigns = campaigns_in_slug_order(raw, dialect, seen)
        # The stored cells are global: a scope's own status, counts and times are formatted here.
        self.stored = not self.derived.scoped and stored_cells_zone(raw) == timezone
        self.frame = BINARY_FRAME if self.stored else 0  # bytes before each row's line

    def sql(self, after: int | None, upto: int | None) -> bytes:
        """The COPY of the volunteers with after < id <= upto (open ends for None)."""
        if self.stored:
            query = stored_query(self.condition, self.campaigns, after, upto)
            return copy_sql(self.raw, self.dialect, query, "binary")
        query = copy_query(self.condition, self.campaigns, self.timezone, after, upto, self.derived)
        return copy_sql(self.raw, self.dialect, query, "csv")


class Reader(threading.Thread):
    """Runs its share of the segments' COPYs on one connection, a bounded queue ahead."""

    def __init__(
        self,
        raw: psycopg.Connection[Any],
        queries: list[bytes],
        stop: threading.Event,
        frame: int = 0,
    ) -> None:
        super().__init__(name="csv-copy", daemon=True)
        self.raw = raw
        self.queries = queries
        self.stop = stop
        self.frame = frame
        self.blocks: queue.Queue[Block | BaseException | None] = queue.Queue(READ_AHEAD)

    def run(self) -> None:
        """Copy each segment into the queue, None after each one; an error goes in the queue."""
        try:
            for query in self.queries:
                for block in read_copy(self.raw, query, self.stop, self.frame):
                    self._put(block)
                self._put(None)
        except StoppedError:
            pass
        except BaseException as exc:  # handed to the writer, which raises it
            with contextlib.suppress(StoppedError):
                self._put(exc)

    def _put(self, item: Block | BaseException | None) -> None:
        while True:
            try:
                self.blocks.put(item, timeout=POLL)
                return
            except queue.Full:
                if self.stop.is_set():
                    raise StoppedError from None

    def segment(self) -> Iterator[Block]:
        """The blocks of this reader's next segment, as they come."""
        while True:
            try:
                item = self.blocks.get(timeout=POLL)
            except queue.Empty:
                if not self.is_alive():
                    raise RuntimeError("the export's reader stopped early") from None
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def read_copy(
    raw: psycopg.Connection[Any], query: bytes, stop: threading.Event | None, frame: int = 0
) -> Iterator[Block]:
    """Run one COPY ... TO STDOUT and yield its rows in blocks of about BLOCK bytes.

    libpq hands over one row per CopyData message; psycopg's Copy object costs a generator and
    a wait per row, so this reads them with libpq's calls directly and waits only when none is
    buffered. Each row is copied into the block at once: the memoryview libpq's buffer comes in
    is tracked by the garbage collector, and thousands of them held until the block is joined
    set off full collections that cost more than the reading. Abandoned half way without
    `stop`, it cancels the query and drains the connection so it can be used again.

    With `frame` (a binary COPY of one non-null column), the bytes before each row's value are
    dropped, and the header before the first; the trailer, shorter than any row, is skipped.
    """
    pgconn = raw.pgconn
    pgconn.send_query(query)
    done = False
    try:
        result = _result(pgconn, stop)
        if result is None or result.status != ExecStatus.COPY_OUT:
            _raise(raw, result, stop)
            raise RuntimeError("COPY did not start copying out")
        get = pgconn.get_copy_data
        block = bytearray()
        rows = 0
        skip = frame + BINARY_HEADER if frame else 0
        while True:
            nbytes, data = get(1)
            if nbytes > 0:
                if nbytes < skip:
                    continue  # a binary COPY's trailer (with no rows, its header too)
                # Copied at once: a memoryview kept alive would reach the garbage collector.
                block += data[skip:] if skip else data
                skip = frame
                rows += 1
                if len(block) >= BLOCK:
                    yield rows, bytes(block)
                    block.clear()
                    rows = 0
            elif nbytes == 0:
                _wait(pgconn.socket, stop)
                pgconn.consume_input()
            else:
                break
        if rows:
            yield rows, bytes(block)
        _raise(raw, _result(pgconn, stop), stop)
        done = True
    finally:
        if not done and stop is None:
            _abandon(raw)


def _raise(
    raw: psycopg.Connection[Any], result: PGresult | None, stop: threading.Event | None
) -> None:
    """Read the results left; raise the first error among `result` and them."""
    error: psycopg.Error | None = None
    while result is not None:
        if result.status not in (ExecStatus.COMMAND_OK, ExecStatus.COPY_OUT) and error is None:
            error = psycopg.errors.error_from_result(result, encoding=raw.info.encoding)
        result = _result(raw.pgconn, stop)
    if error is not None:
        raise error


def _result(pgconn: PGconn, stop: threading.Event | None) -> PGresult | None:
    """The next result of the running query, waiting for it; None when there are no more."""
    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            return pgconn.get_result()
        _wait(pgconn.socket, stop)


def _wait(fd: int, stop: threading.Event | None) -> None:
    """Wait until the socket has data; raise StoppedError once `stop` is set."""
    while not select_fds([fd], [], [], POLL)[0]:
        if stop is not None and stop.is_set():
            raise StoppedError


def _abandon(raw: psycopg.Connection[Any]) -> None:
    """Cancel a COPY left half read and drain what the server still sends."""
    pgconn = raw.pgconn
    try:
        raw.cancel_safe()
        while pgconn.get_copy_data(1)[0] >= 0:
            _wait(pgconn.socket, None)
            pgconn.consume_input()
    except psycopg.Error:
        pass
    while _result(pgconn, None) is not None:
        pass


def campaigns_in_slug_order(
    raw: psycopg.Connection[Any],
    dialect: Dialect | None = None,
    seen: ColumnElement[bool] | None = None,
) -> list[tuple[int, str]]:
    """Each campaign's id and slug (those `seen` allows), in slug order (the database's collation).

    Only these campaigns' slugs can appear in the campaigns column: a bitmask maps no other, and
    the slug list joins only these.
    """
    if seen is None or dialect is None:
        statement: Any = "SELECT id, slug FROM campaigns ORDER BY slug"
    else:
        query = select(Campaign.id, Campaign.slug).where(seen).order_by(Campaign.slug)
        compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        statement = psycopg.ClientCursor(raw).mogrify(str(compiled), compiled.params)
    return [(int(i), str(s)) for i, s in raw.execute(statement)]


def copy_sql(
    raw: psycopg.Connection[Any], dialect: Dialect, query: Select[Any], format_: str = "csv"
) -> bytes:
    """`COPY (query) TO STDOUT (FORMAT format_)` with its parameters merged in by psycopg."""
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    statement = psycopg.ClientCursor(raw).mogrify(str(compiled), compiled.params)
    return f"COPY ({statement}) TO STDOUT WITH (FORMAT {format_})".encode()


def stored_cells_zone(raw: psycopg.Connection[Any]) -> str:
    """The zone of the export cells stored on every volunteer row (the migration's)."""
    row = raw.execute("SELECT signup_csv_zone()").fetchone()
    assert row is not None
    return str(row[0])


def sql_text(column: Any) -> Any:
    """What safe_cell does, in SQL: formula prefix, no carriage returns, NULL for empty."""
    cleaned = func.replace(column, "\r", "")
    return case(
        (func.ascii(column).in_(FORMULA_CODES), literal("'") + cleaned),
        (column == "", null()),
        else_=cleaned,
    )


def sql_time(column: Any, suffix: str | None) -> Any:
    """ISO 8601 with the offset, in the session's time zone (set to SIGNUP_TIMEZONE).

    The timestamp's own text (ISO DateStyle) with a T: from 1970 to 2100 cut to whole seconds
    and given the zone's known suffix (see offset_suffix), cheaply; elsewhere the general form,
    which finds a whole hour's offset in the text. Not to_char: it drops an offset's seconds
    (Madras time, +05:21:10, until 1906), which Python's isoformat writes.
    """
    formatted = any_time(column)
    if suffix is None:
        return formatted
    seconds = func.date_bin(literal_column("interval '1 second'"), column, FAST_FROM)
    iso = func.replace(cast(seconds, Text), " ", "T")
    return case(
        ((column >= FAST_FROM) & (column < FAST_UNTIL), iso + suffix if suffix else iso),
        else_=formatted,
    )


def any_time(column: Any) -> Any:
    """ISO 8601 of any time as Python writes it: PostgreSQL's `+05` becomes `+05:00`."""
    iso = func.replace(cast(func.date_trunc("second", column), Text), " ", "T")
    return func.regexp_replace(iso, r"([+-][0-9]{2})$", r"\1:00")


@functools.cache
def offset_suffix(timezone: str) -> str | None:
    """What PostgreSQL's text of a time lacks in this zone from 1970 to 2100, or None if unsure.

    PostgreSQL writes an offset as +05:30 but a whole hour as +00; Python writes +00:00. '' when
    no offset of the zone in that period is a whole hour, ':00' when every one is, None when
    they mix or have seconds (the zone's offset is looked at once a day).
    """
    zone = ZoneInfo(timezone)
    kinds: set[bool] = set()
    moment = FAST_FROM
    while moment < FAST_UNTIL:
        offset = moment.astimezone(zone).utcoffset()
        seconds = int(offset.total_seconds()) if offset is not None else 0
        if seconds % 60:
            return None
        kinds.add(seconds % 3600 == 0)
        moment += timedelta(days=1)
    if len(kinds) != 1:
        return None
    return ":00" if True in kinds else ""


def slug_labels(slugs: Sequence[str], quoted: bool = False) -> list[str]:
    """The formula-safe `;`-joined slug list of every non-zero bitmask over `slugs`, in order.

    `quoted`: as the csv module writes the cell (for a line built from the stored cells).
    """
    labels = [
        safe_cell(";".join(slug for bit, slug in enumerate(slugs) if mask >> bit & 1))
        for mask in range(1, 1 << len(slugs))
    ]
    return [csv_quoted(label) for label in labels] if quoted else labels


def csv_quoted(cell: str) -> str:
    """The cell as the csv module writes it: in quotes, quotes doubled, if it needs them."""
    if '"' in cell or "," in cell or "\n" in cell:
        return '"' + cell.replace('"', '""') + '"'
    return cell


def campaigns_column(
    campaigns: Sequence[tuple[int, str]], in_range: list[ColumnElement[bool]], quoted: bool = False
) -> tuple[Any, Any]:
    """Each volunteer's campaigns (a column) and the per-volunteer subquery it comes from.

    `quoted`: the cell as the csv module writes it, for a line built from the stored cells.
    """
    subscriber = Subscription.volunteer_id.label("volunteer_id")
    if len(campaigns) <= MASK_CAMPAIGNS:
        bits = case(
            {cid: 1 << bit for bit, (cid, _) in enumerate(campaigns)},
            value=Subscription.campaign_id,
        )
        masks = select(subscriber, func.bit_or(bits).label("mask")).where(*in_range)
        per_volunteer = masks.group_by(Subscription.volunteer_id).subquery()
        labels = slug_labels([s for _, s in campaigns], quoted)
        return Grouping(literal(labels, ARRAY(Text)))[per_volunteer.c.mask], per_volunteer
    joined = func.string_agg(Campaign.slug, aggregate_order_by(literal(";"), Campaign.slug))
    shown = Campaign.id.in_([cid for cid, _ in campaigns])
    slugs = (
        select(subscriber, joined.label("slugs"))
        .join(Campaign, Campaign.id == Subscription.campaign_id)
        .where(*in_range, shown)
        .group_by(Subscription.volunteer_id)
        .subquery()
    )
    # signup_csv_text (migration d41e7c9b2a60) is safe_cell and the csv module's quoting.
    cell = func.signup_csv_text(slugs.c.slugs) if quoted else sql_text(slugs.c.slugs)
    return cell, slugs


def id_range(
    after: int | None, upto: int | None
) -> tuple[list[ColumnElement[bool]], list[ColumnElement[bool]]]:
    """after < id <= upto on volunteers, and on the subscriptions' volunteer_id."""
    bounds: list[ColumnElement[bool]] = []
    in_range: list[ColumnElement[bool]] = []
    if after is not None:
        bounds.append(Volunteer.id > after)
        in_range.append(Subscription.volunteer_id > after)
    if upto is not None:
        bounds.append(Volunteer.id <= upto)
        in_range.append(Subscription.volunteer_id <= upto)
    return bounds, in_range


def stored_query(
    condition: ColumnElement[bool],
    campaigns: Sequence[tuple[int, str]],
    after: int | None,
    upto: int | None,
) -> Select[Any]:
    """The CSV lines of volunteers with after < id <= upto, from the cells stored on each row."""
    bounds, in_range = id_range(after, upto)
    line: Any = literal_column("volunteers.csv_head", Text)
    per_volunteer = None
    if campaigns:
        cell, per_volunteer = campaigns_column(campaigns, in_range, quoted=True)
        line = line + func.coalesce(cell, "")
    line = line + literal_column("volunteers.csv_tail", Text)
    query = select(line.label("line")).select_from(Volunteer)
    if per_volunteer is not None:
        query = query.outerjoin(per_volunteer, per_volunteer.c.volunteer_id == Volunteer.id)
    return query.where(condition, *bounds).order_by(Volunteer.id)


def copy_query(
    condition: ColumnElement[bool],
    campaigns: Sequence[tuple[int, str]],
    timezone: str,
    after: int | None,
    upto: int | None,
    derived: Derived | None = None,
) -> Select[Any]:
    """The export of volunteers with after < id <= upto as one query whose columns are the CSV's.

    `derived`: the status, counts and times the asking account sees (the row's own by default).
    """
    suffix = offset_suffix(timezone)
    v = Volunteer
    d = derived or Derived.stored()
    bounds, in_range = id_range(after, upto)
    if campaigns:
        slugs, per_volunteer = campaigns_column(campaigns, in_range)
    else:
        slugs, per_volunteer = null(), None
    query = select(
        v.phone.label("phone"),
        sql_text(v.name).label("name"),
        sql_text(d.status).label("status"),
        slugs.label("campaigns"),
        d.call_count.label("call_count"),
        sql_time(d.first_call_at, suffix).label("first_call_at"),
        sql_time(d.last_call_at, suffix).label("last_call_at"),
        sql_time(d.consent_at, suffix).label("consent_at"),
        sql_time(d.opted_out_at, suffix).label("opted_out_at"),
        sql_text(v.state).label("state"),
        sql_text(v.district).label("district"),
        sql_text(v.pincode).label("pincode"),
        sql_text(v.language).label("language"),
    )
    if per_volunteer is not None:
        query = query.outerjoin(per_volunteer, per_volunteer.c.volunteer_id == v.id)
    return query.where(condition, *bounds).order_by(v.id)
