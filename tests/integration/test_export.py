"""The volunteers CSV: columns, filters, formula safety, time zone, streaming."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert

from signup.calls import services as calls
from signup.extensions import db
from signup.volunteers.export import COLUMNS, CsvExport, VolunteerFilter, iter_rows, safe_cell
from signup.volunteers.models import Volunteer
from tests.integration.factories import campaign, inbound

pytestmark = pytest.mark.usefixtures("db_session")


def export(
    filters: VolunteerFilter | None = None, tz: str = "Asia/Kolkata"
) -> list[dict[str, str]]:
    text = b"".join(CsvExport(filters or VolunteerFilter(), tz)).decode()
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def join(phone: str, to: str = "+918047259725") -> None:
    result = calls.process_call(inbound(phone, to).id)
    assert result is not None


def test_header_is_the_contract_columns() -> None:
    text = b"".join(CsvExport(VolunteerFilter(), "Asia/Kolkata")).decode()
    assert text.splitlines()[0] == "\ufeff" + ",".join(COLUMNS)


@pytest.mark.parametrize(
    "name",
    ['=HYPERLINK("http://x","y")', "+91 call me", "-1", "@SUM(A1)", "\tTab", "\rCR"],
)
def test_formula_like_text_is_neutralised(name: str) -> None:
    campaign()
    join("+919911278181")
    db.session.query(Volunteer).update({"name": name, "district": name})
    [row] = export()
    neutralised = ("'" + name).replace("\r", "")  # carriage returns are dropped from cells
    assert row["name"] == neutralised
    assert row["district"] == neutralised
    assert row["phone"] == "+919911278181"  # phone is exempt, being E.164


def test_hindi_names_round_trip_in_utf8() -> None:
    campaign()
    join("+919911278181")
    db.session.query(Volunteer).update({"name": "आशा देवी", "state": "उत्तर प्रदेश"})
    [row] = export()
    assert (row["name"], row["state"]) == ("आशा देवी", "उत्तर प्रदेश")


def test_times_are_iso_8601_in_the_configured_zone() -> None:
    campaign()
    join("+919911278181")
    moment = datetime(2026, 11, 21, 18, 45, tzinfo=UTC)
    db.session.query(Volunteer).update({"first_call_at": moment})
    assert export()[0]["first_call_at"] == "2026-11-22T00:15:00+05:30"
    assert export(tz="UTC")[0]["first_call_at"] == "2026-11-21T18:45:00+00:00"
    assert export()[0]["opted_out_at"] == ""  # unknown values are empty


def test_filters_by_campaign_status_and_query() -> None:
    campaign("a", "+918047259725", "+918047259726")
    campaign("b", "+918047250000", None, name="Beta")
    join("+919911278181", "+918047259725")
    join("+919911278182", "+918047250000")
    join("+919911278183", "+918047250000")
    join("+919911278183", "+918047259725")
    join("+919911278182", "+918047259726")  # opts out of a: not a member, nothing changes
    join("+919911278181", "+918047259726")  # opts out of a
    db.session.query(Volunteer).filter_by(phone="+919911278183").update({"name": "Asha 100%"})
    assert [r["phone"] for r in export(VolunteerFilter(campaign="b"))] == [
        "+919911278182",
        "+919911278183",
    ]
    assert [r["campaigns"] for r in export()] == ["a", "b", "a;b"]
    assert [r["phone"] for r in export(VolunteerFilter(status="opted_out"))] == ["+919911278181"]
    assert [r["phone"] for r in export(VolunteerFilter(q="099112 78182"))] == ["+919911278182"]
    assert [r["phone"] for r in export(VolunteerFilter(q="asha 100%"))] == ["+919911278183"]
    assert export(VolunteerFilter(q="100_")) == []  # LIKE wildcards are literal


def test_rows_stream_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from signup.volunteers import export as module

    now = datetime.now(UTC)
    db.session.execute(
        insert(Volunteer),
        [
            {
                "phone": f"+9199{i:08d}",
                "status": "active",
                "call_count": 1,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(2500)
        ],
    )
    monkeypatch.setattr(module, "BATCH", 1000)
    seen = [row[0] for row in iter_rows(VolunteerFilter(), "UTC")]
    assert len(seen) == 2500 and seen == sorted(seen)


def test_safe_cell_leaves_ordinary_text() -> None:
    assert safe_cell("Asha") == "Asha"
    assert safe_cell("") == ""


def test_postgres_copy_and_python_writer_give_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch, app: Any
) -> None:
    """The fast path (COPY on PostgreSQL) must write exactly what the Python writer writes."""
    from signup.admin.access import Access
    from signup.users.models import Role
    from signup.volunteers import export as module

    a = campaign("a", "+918047259725", "+918047259726")
    campaign("b", "+918047250000", None, name="Beta")
    awkward = [
        'Asha, "the" organiser',
        "line\nbreak",
        "",
        "=1+1",
        "आशा देवी",
        "tab\there",
        "\rcarriage",
        "plain",
        "-5",
        "trailing ",
        "@home",
    ]
    for i, name in enumerate(awkward):
        phone = f"+9199112781{i:02d}"
        join(phone)
        if i % 3 == 0:
            join(phone, "+918047250000")
        if i % 4 == 0:
            join(phone, "+918047259726")  # opted out of a
        db.session.query(Volunteer).filter_by(phone=phone).update(
            {
                "name": name or None,
                "state": ["Bihar", "", None][i % 3],
                "district": "=cmd" if i == 5 else None,
                "pincode": "800001" if i % 2 else None,
            }
        )
    cases = [
        VolunteerFilter(),
        VolunteerFilter(campaign="b"),
        VolunteerFilter(status="opted_out"),
        VolunteerFilter(q="asha"),
        VolunteerFilter(scope=Access(0, Role.ORGANISER, frozenset({a.id}), None)),
    ]
    for filters in cases:
        for zone in ("Asia/Kolkata", "UTC", "America/St_Johns"):
            fast = b"".join(CsvExport(filters, zone))
            monkeypatch.setattr(module, "dialect_name", lambda: "sqlite")
            slow = b"".join(CsvExport(filters, zone))
            monkeypatch.undo()
            assert fast == slow, (filters, zone)
            assert fast.count(b"\n") > 1
    stream = CsvExport(VolunteerFilter(), "UTC")
    b"".join(stream)
    assert stream.rows == len(awkward)
