"""The PostgreSQL export on two connections (committed data): the Python writer's bytes."""

from __future__ import annotations

import csv
import gc
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import insert, select

from signup.admin.access import Access
from signup.campaigns.models import Campaign
from signup.extensions import db
from signup.users.models import Role
from signup.volunteers import export as module
from signup.volunteers import pgcopy
from signup.volunteers.export import CsvExport, VolunteerFilter
from signup.volunteers.models import Subscription, Volunteer
from tests.integration.factories import campaign

NAMES = [
    'Asha, "the" organiser',
    "line\nbreak",
    "",
    None,
    "=1+1",
    "आशा देवी",
    "tab\there",
    "\rcarriage",
    "-5",
    "@home",
    "trailing ",
]
TIMES = [
    datetime(2026, 11, 21, 18, 45, 7, 999_999, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),  # before the fast window
    datetime(2150, 6, 1, 12, 0, 1, tzinfo=UTC),  # after it
    datetime(2009, 3, 8, 6, 30, tzinfo=UTC),  # Caracas was -04:30 then
    None,
]
ZONES = ("Asia/Kolkata", "UTC", "America/St_Johns", "Europe/London", "America/Caracas")


@pytest.fixture
def seeded(committed: Flask) -> Iterator[list[int]]:
    """Committed volunteers with awkward cells in four campaigns; the campaigns' ids."""
    ids = [
        campaign("b-second", "+918047250001", "+918047259001").id,
        campaign("a-first", "+918047250002", None, name="A").id,
        campaign("d-fourth", "+918047250003", None, name="D").id,
        campaign("c-third", "+918047250004", None, name="C").id,
    ]
    now = datetime.now(UTC)
    rows = [
        {
            "phone": f"+9199112{i:05d}",
            "name": NAMES[i % len(NAMES)],
            "status": ["active", "opted_out", "imported"][i % 3],
            "call_count": i % 4,
            "first_call_at": TIMES[i % len(TIMES)],
            "last_call_at": TIMES[(i + 1) % len(TIMES)],
            "consent_at": TIMES[(i + 2) % len(TIMES)],
            "opted_out_at": TIMES[(i + 3) % len(TIMES)] if i % 3 == 1 else None,
            "state": ["Bihar", "", None, "=cmd"][i % 4],
            "district": "+x" if i % 5 == 0 else "Patna",
            "pincode": "800001" if i % 2 else None,
            "language": ["hi", "en", None][i % 3],
            "created_at": now,
            "updated_at": now,
        }
        for i in range(60)
    ]
    db.session.execute(insert(Volunteer), rows)
    volunteer_ids = db.session.scalars(select(Volunteer.id).order_by(Volunteer.id)).all()
    db.session.execute(
        insert(Subscription),
        [
            {"volunteer_id": v, "campaign_id": c, "status": "active", "joined_at": now}
            for n, v in enumerate(volunteer_ids)
            for bit, c in enumerate(ids)
            if (n * 7 + 3) >> bit & 1  # every combination of the four campaigns, and none
        ],
    )
    db.session.commit()
    yield ids


def both(filters: VolunteerFilter, zone: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The bytes of the PostgreSQL export and of the Python writer, and the rows counted."""
    fast = CsvExport(filters, zone)
    fast_bytes = b"".join(fast)
    db.session.rollback()
    with monkeypatch.context() as patch:
        patch.setattr(module, "dialect_name", lambda: "sqlite")
        slow = CsvExport(filters, zone)
        slow_bytes = b"".join(slow)
    db.session.rollback()
    return (fast_bytes, fast.rows), (slow_bytes, slow.rows)


@pytest.mark.parametrize("zone", ZONES)
def test_segments_on_two_connections_give_the_python_writers_bytes(
    seeded: list[int], zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgcopy, "SEGMENT", 7)  # 9 segments over 60 ids, in turn on 2 connections
    monkeypatch.setattr(pgcopy, "BLOCK", 300)  # several blocks per segment
    used: list[int] = []
    parallel = pgcopy._parallel

    def spy(*args: Any) -> Iterator[pgcopy.Block]:
        used.append(1)
        yield from parallel(*args)

    monkeypatch.setattr(pgcopy, "_parallel", spy)
    (fast, fast_rows), (slow, slow_rows) = both(VolunteerFilter(), zone, monkeypatch)
    assert used, "the export did not take the parallel path"
    assert fast == slow
    assert fast_rows == slow_rows == 60


def test_filters_and_scope_apply_to_every_segment(
    seeded: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgcopy, "SEGMENT", 5)
    scoped = Access(0, Role.ORGANISER, frozenset({seeded[0]}), frozenset({"Bihar", "=cmd"}))
    slug = db.session.scalar(select(Campaign.slug).where(Campaign.id == seeded[2]))
    for filters in (
        VolunteerFilter(scope=scoped),
        VolunteerFilter(campaign=slug, status="opted_out"),
        VolunteerFilter(q="asha"),
        VolunteerFilter(q="+91 99112 00007"),
    ):
        (fast, fast_rows), (slow, slow_rows) = both(filters, "Asia/Kolkata", monkeypatch)
        assert fast == slow, filters
        assert fast_rows == slow_rows
        assert 0 < fast_rows < 60


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])  # cells formatted, cells stored
def test_many_campaigns_use_the_sorted_aggregate(
    seeded: list[int], zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgcopy, "MASK_CAMPAIGNS", 3)  # four campaigns: more than a bitmask takes
    monkeypatch.setattr(pgcopy, "SEGMENT", 16)
    (fast, _), (slow, _) = both(VolunteerFilter(), zone, monkeypatch)
    assert fast == slow
    assert b"a-first;b-second;c-third;d-fourth" in fast


@pytest.mark.parametrize("mask_campaigns", [8, 1])  # by bitmask; by the sorted aggregate
@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])  # cells formatted, cells stored
def test_the_campaigns_column_holds_only_the_scopes_campaigns(
    seeded: list[int], zone: str, mask_campaigns: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgcopy, "MASK_CAMPAIGNS", mask_campaigns)
    scoped = Access(0, Role.ORGANISER, frozenset({seeded[0], seeded[2]}), None)
    (fast, _), (slow, _) = both(VolunteerFilter(scope=scoped), zone, monkeypatch)
    assert fast == slow
    rows = csv.DictReader(io.StringIO(fast.decode().lstrip("\ufeff")))
    assert {row["campaigns"] for row in rows} == {"b-second", "d-fourth", "b-second;d-fourth"}


@pytest.mark.parametrize(("zone", "stored"), [("Asia/Kolkata", True), ("UTC", False)])
def test_the_stored_cells_serve_their_own_zone_only(
    seeded: list[int], zone: str, stored: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cells on the rows are in signup_csv_zone(); another zone formats them at export."""
    built: list[bool] = []
    real = pgcopy.Export.sql

    def spy(self: pgcopy.Export, after: int | None, upto: int | None) -> bytes:
        built.append(self.stored)
        return real(self, after, upto)

    monkeypatch.setattr(pgcopy.Export, "sql", spy)
    (fast, _), (slow, _) = both(VolunteerFilter(), zone, monkeypatch)
    assert fast == slow
    assert built and set(built) == {stored}


HISTORY = [
    datetime(999, 6, 1, 12, 0, tzinfo=UTC),  # local mean time, +05:53:28
    datetime(1900, 1, 1, tzinfo=UTC),  # Madras time, +05:21:10
    datetime(1943, 6, 1, 10, 0, 30, 123_456, tzinfo=UTC),  # war time, +06:30
    datetime(1945, 10, 14, 17, 59, 59, tzinfo=UTC),  # the last second of +06:30
    datetime(1945, 10, 14, 18, 0, tzinfo=UTC),  # +05:30 from here on
    datetime(2026, 12, 31, 18, 29, 59, 999_999, tzinfo=UTC),  # New Year's Eve in India
    datetime(9999, 12, 31, 12, 0, tzinfo=UTC),
]


def add_history() -> None:
    """Commit one volunteer for each moment of HISTORY, the moments in several columns."""
    now = datetime.now(UTC)
    db.session.execute(
        insert(Volunteer),
        [
            {
                "phone": f"+9199113{i:05d}",
                "name": NAMES[i % len(NAMES)],
                "status": "active",
                "call_count": i,
                "first_call_at": moment,
                "last_call_at": HISTORY[-1 - i],
                "consent_at": moment,
                "created_at": now,
                "updated_at": now,
            }
            for i, moment in enumerate(HISTORY)
        ],
    )
    db.session.commit()


def test_stored_cells_of_any_time_and_after_every_write(
    committed: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Times across Asia/Kolkata's history, and cells rewritten when the row is."""
    monkeypatch.setattr(pgcopy, "SEGMENT", 3)
    add_history()
    (fast, _), (slow, _) = both(VolunteerFilter(), "Asia/Kolkata", monkeypatch)
    assert fast == slow
    assert b",1900-01-01T05:21:10+05:21:10," in fast
    assert b",1943-06-01T16:30:30+06:30," in fast
    assert b",1945-10-14T23:30:00+05:30," in fast

    db.session.execute(
        Volunteer.__table__.update()
        .where(Volunteer.phone == "+919911300001")
        .values(name='=Ram, "Bhai"', call_count=41, state="Goa", opted_out_at=HISTORY[2])
    )
    db.session.commit()
    (fast, _), (slow, _) = both(VolunteerFilter(), "Asia/Kolkata", monkeypatch)
    assert fast == slow
    assert b'+919911300001,"\'=Ram, ""Bhai""",active,,41,' in fast


@pytest.mark.parametrize(
    ("zone", "cell"),
    [
        ("Asia/Calcutta", b",1900-01-01T05:21:10+05:21:10,"),  # Kolkata's alias: not stored
        ("Europe/Amsterdam", b",1900-01-01T00:19:32+00:19:32,"),  # Amsterdam mean time
        ("America/Caracas", b",1899-12-31T19:32:20-04:27:40,"),  # mixed offsets: no fast window
        ("UTC", b",1900-01-01T00:00:00+00:00,"),
    ],
)
def test_times_formatted_at_export_keep_an_offsets_seconds(
    committed: Flask, zone: str, cell: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside the stored cells' zone, old offsets with seconds are written as Python does."""
    monkeypatch.setattr(pgcopy, "SEGMENT", 3)
    add_history()
    (fast, _), (slow, _) = both(VolunteerFilter(), zone, monkeypatch)
    assert fast == slow
    assert cell in fast


def test_the_reader_drops_a_binary_copys_framing(committed: Flask) -> None:
    """One text column, binary: each row's value, without the header, frames or trailer."""
    raw = db.engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert connection is not None
        for count in (0, 1, 3):
            query = (
                b"COPY (SELECT 'line ' || g || E'\\n' FROM generate_series(1, %d) g)"
                b" TO STDOUT (FORMAT binary)" % count
            )
            blocks = list(pgcopy.read_copy(connection, query, None, pgcopy.BINARY_FRAME))
            assert sum(rows for rows, _ in blocks) == count
            assert b"".join(block for _, block in blocks) == b"".join(
                b"line %d\n" % g for g in range(1, count + 1)
            )
    finally:
        raw.close()


def test_an_abandoned_export_leaves_the_pool_usable(
    seeded: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgcopy, "SEGMENT", 3)
    monkeypatch.setattr(pgcopy, "BLOCK", 100)
    monkeypatch.setattr(pgcopy, "READ_AHEAD", 1)  # readers wait on a full queue when it stops
    stream = iter(CsvExport(VolunteerFilter(), "UTC"))
    next(stream)
    next(stream)
    stream.close()  # the client went away
    db.session.rollback()
    (fast, rows), (slow, _) = both(VolunteerFilter(), "UTC", monkeypatch)
    assert fast == slow and rows == 60


def test_slug_labels_are_sorted_and_formula_safe() -> None:
    assert pgcopy.slug_labels(["a", "b"]) == ["a", "b", "a;b"]
    assert pgcopy.slug_labels(["-x", "y"]) == ["'-x", "y", "'-x;y"]


def test_offset_suffix_by_zone() -> None:
    assert pgcopy.offset_suffix("Asia/Kolkata") == ""  # +05:30 as PostgreSQL writes it
    assert pgcopy.offset_suffix("UTC") == ":00"  # PostgreSQL writes +00
    assert pgcopy.offset_suffix("America/Caracas") is None  # -04:00 and -04:30: the general form


def test_segments_cover_the_ids_with_open_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgcopy, "SEGMENT", 10)
    assert pgcopy.segments(None, None) == []
    assert pgcopy.segments(5, 5) == [(None, None)]
    assert pgcopy.segments(1, 25) == [(None, 10), (10, 20), (20, None)]
    assert pgcopy.segments(1, 20) == [(None, 10), (10, None)]


def test_the_reader_leaves_nothing_for_the_garbage_collector(
    committed: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows waiting for their block are copied, not held as (GC-tracked) memoryviews.

    Held, 50,000 of them set off dozens of collections, full ones among them, and those
    cost the reader more than reading (docs/benchmarks.md, session 4).
    """
    monkeypatch.setattr(pgcopy, "BLOCK", 10**9)  # every row waits for the one block
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    raw = db.engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert connection is not None
        query = b"COPY (SELECT g, 'row ' || g FROM generate_series(1, 50000) g) TO STDOUT"
        gc.collect()
        gc.callbacks.append(count)
        try:
            blocks = list(pgcopy.read_copy(connection, query, None))
        finally:
            gc.callbacks.remove(count)
    finally:
        raw.close()
    assert [rows for rows, _ in blocks] == [50000]
    assert blocks[0][1].startswith(b"1\trow 1\n2\trow 2\n") and blocks[0][1].endswith(b"\n")
    assert len(collections) < 5, collections  # held memoryviews: one per ~700 rows
