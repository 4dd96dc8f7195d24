"""Importing organisers' lists: every row checked, a preview, then a merge without duplicates."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from openpyxl import Workbook
from sqlalchemy import func, select

from signup.admin.models import ImportBatch, ImportStatus
from signup.admin.tasks import read_import
from signup.calls import batch
from signup.calls import services as calls
from signup.calls.models import CallOutcome
from signup.errors import ValidationError
from signup.extensions import db
from signup.messaging import keywords
from signup.messaging.models import InboundMessage, Message
from signup.volunteers import erasure, importer
from signup.volunteers.models import ConsentEvent, Volunteer
from tests.integration.admin_helpers import as_user, token
from tests.integration.factories import OPTOUT, campaign, inbound

pytestmark = pytest.mark.usefixtures("db_session", "fresh_limits")

CSV = (
    "Phone,Name,State,District,PIN code\n"
    "099112 78190,आशा देवी,,,800001\n"  # state and district from the PIN code
    "9.19911E+11,Damaged,,,\n"  # Excel lost the digits
    "919911278191,Ravi,Kerala,Kochi,\n"
    "+91 99112 78190,Again,,,\n"  # the same number as row 2
    "hello,Nobody,,,\n"
    "+919911278181,Alice Updated,Goa,,\n"  # already a volunteer (from world)
    "9911278192,Meena,,,999999\n"  # unknown PIN code
    ",,,,\n"
)


def test_check_reports_an_error_per_bad_row() -> None:
    rows = importer.check(CSV.encode(), "list.csv")
    errors = {row.line: row.error for row in rows if row.error}
    assert set(errors) == {3, 5, 6, 8}
    assert "damaged by Excel" in (errors[3] or "")
    assert "earlier row" in (errors[5] or "")
    assert "not a phone number" in (errors[6] or "")
    assert "PIN code 999999 is unknown" in (errors[8] or "")
    first = rows[0]
    assert (first.phone, first.name, first.state, first.district) == (
        "+919911278190",
        "आशा देवी",
        "Bihar",
        "Patna",
    )


@pytest.mark.parametrize(
    ("data", "name", "error"),
    [
        (b"name,state\nA,B\n", "x.csv", "phone column"),
        (b"", "x.csv", "empty"),
        (b"phone\n", "x.csv", "no rows"),
        (b"phone\n99112\xff\n", "x.csv", "UTF-8"),
        (b"phone\n1\n", "x.pdf", ".csv or .xlsx"),
        (b"not a zip", "x.xlsx", "readable .xlsx"),
    ],
)
def test_unusable_files_are_refused_with_one_line(data: bytes, name: str, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        importer.check(data, name)


def test_xlsx_numbers_keep_every_digit() -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Mobile", "Name"])
    sheet.append([919911278193, "From a number cell"])
    sheet.append(["099112 78194", "From a text cell"])
    sheet.append(["9.19911E+11", "Damaged text"])
    buffer = io.BytesIO()
    book.save(buffer)
    rows = importer.check(buffer.getvalue(), "list.xlsx")
    assert [r.phone for r in rows] == ["+919911278193", "+919911278194", None]
    assert rows[2].error and "damaged by Excel" in rows[2].error


def test_erased_people_are_not_re_added() -> None:
    campaign()
    calls.process_call(inbound("+919911278195").id)
    erasure.erase("+919911278195", "test")
    [row] = importer.check(b"phone\n9911278195\n", "x.csv")
    assert row.error == "this person asked to be erased"


LEFT = "+919911278197"


def _withdraw_before_any_list(source: str) -> tuple[str, int]:
    """LEFT, nobody's volunteer, asks to leave through `source`; the evidence's column and id."""
    if source in ("stop_reply", "provider_stop"):
        body, optout_type = ("STOP", None) if source == "stop_reply" else ("ARRET", "STOP")
        keywords.handle_reply(keywords.Reply("twilio", "SM1", LEFT, body, optout_type))
        inbound_id = db.session.scalar(select(func.max(InboundMessage.id)))
        return "inbound_message_id", int(inbound_id or 0)
    call = inbound(LEFT, OPTOUT)
    if source == "opt_out_call_batch":
        batch.process_batch([call.id])
    else:
        calls.process_call(call.id)
    db.session.refresh(call)
    assert call.outcome == CallOutcome.NOT_A_VOLUNTEER
    return "call_id", call.id


@pytest.mark.parametrize(
    "source", ["stop_reply", "provider_stop", "opt_out_call", "opt_out_call_batch"]
)
def test_a_person_who_already_left_is_imported_opted_out(source: str) -> None:
    """A recorded withdrawal (STOP, provider opt-out, opt-out call) outranks an organiser's list:
    imported `opted_out`, the withdrawal in the ledger with its evidence; others `imported`."""
    campaign()
    column, evidence_id = _withdraw_before_any_list(source)
    importer.merge(importer.check(f"phone\n{LEFT}\n9911278198\n".encode(), "x.csv"))
    db.session.expire_all()
    statuses = {
        phone: status
        for phone, status in db.session.execute(select(Volunteer.phone, Volunteer.status))
    }
    assert statuses == {LEFT: "opted_out", "+919911278198": "imported"}
    left = db.session.scalar(select(Volunteer).where(Volunteer.phone == LEFT))
    assert left is not None and left.opted_out_at is not None
    [event] = db.session.scalars(select(ConsentEvent))
    assert (event.volunteer_id, event.event) == (left.id, "withdrawn")
    assert getattr(event, column) == evidence_id
    assert not db.session.scalar(select(func.count()).select_from(Message))


def upload(client: FlaskClient, data: bytes, name: str) -> Any:
    return client.post(
        "/admin/import",
        data={"csrf_token": token(client, "/admin/import"), "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def read_uploads() -> list[str | None]:
    """Do what the worker does with the published tasks: read every waiting upload."""
    waiting = select(ImportBatch.id).where(ImportBatch.status == ImportStatus.WAITING)
    return [read_import.run(batch_id) for batch_id in db.session.scalars(waiting).all()]


def test_preview_then_merge_without_duplicates_or_sms(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    as_user(client, "org@x.org")
    messages_before = db.session.scalar(select(func.count()).select_from(Message))
    response = upload(client, CSV.encode(), "list.csv")
    assert response.status_code == 302
    preview_url = response.headers["Location"]
    assert "Waiting to be read" in client.get(preview_url).get_data(as_text=True)
    assert read_uploads() == ["ready"]
    preview = client.get(preview_url).get_data(as_text=True)
    assert "4 will be skipped" in preview and "damaged by Excel" in preview
    assert db.session.scalar(select(func.count()).select_from(Volunteer)) == 3  # nothing yet
    confirmed = client.post(preview_url, data={"csrf_token": token(client, preview_url)})
    assert confirmed.status_code == 302
    people = {v.phone: v for v in db.session.scalars(select(Volunteer))}
    assert len(people) == 5
    assert people["+919911278190"].status == "imported"
    assert people["+919911278190"].call_count == 0
    assert people["+919911278181"].status == "active"  # existing: blanks filled, never replaced
    assert people["+919911278181"].state == "Bihar" and people["+919911278181"].name == (
        "Alice Updated"
    )
    assert db.session.scalar(select(func.count()).select_from(Message)) == messages_before
    again = client.post(
        preview_url, data={"csrf_token": token(client, preview_url)}, follow_redirects=True
    )
    assert "already been imported" in again.get_data(as_text=True)
    audit = client.get("/admin/audit")  # organisers cannot read the audit log
    assert audit.status_code == 403


def test_an_imported_person_who_calls_becomes_active(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    importer.merge(importer.check(b"phone\n9911278196\n", "x.csv"))
    result = calls.process_call(inbound("+919911278196", "+918047259725").id)
    assert result is not None and len(result.message_ids) == 1  # now they consented: onboarding
    volunteer = db.session.scalar(select(Volunteer).where(Volunteer.phone == "+919911278196"))
    assert volunteer is not None and volunteer.status == "active" and volunteer.call_count == 1


@pytest.mark.parametrize("email", ["view@x.org", "org-b@x.org"])
def test_viewers_and_scoped_accounts_cannot_import(
    client: FlaskClient, world: dict[str, Any], email: str
) -> None:
    as_user(client, email)
    assert client.get("/admin/import").status_code == 403


def test_a_bad_file_is_refused_with_one_line(client: FlaskClient, world: dict[str, Any]) -> None:
    as_user(client, "org@x.org")
    response = upload(client, b"name\nA\n", "list.csv")
    assert response.status_code == 302
    assert read_uploads() == ["failed"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(r"list.csv: the first row must name a phone column", page)


@pytest.mark.parametrize(("data", "name"), [(b"", "list.csv"), (b"phone\n1\n", "list.pdf")])
def test_a_file_refused_by_its_name_or_size_is_a_clear_400(
    client: FlaskClient, world: dict[str, Any], data: bytes, name: str
) -> None:
    as_user(client, "org@x.org")
    response = upload(client, data, name)
    assert response.status_code == 400
    assert re.search(r"the file is empty|upload a .csv or .xlsx", response.get_data(as_text=True))
