"""A campaign-scoped account sees a person's status, calls and times from its campaigns alone.

Priya called campaigns A and B (B twice, later) and was opted out of A by an A-scoped admin:
she is active in B only. Every account limited to A (every role, with and without a state)
must see her as opted out, with A's one call and A's times, on every page and CSV that shows
those values (the list with every status filter and sort, the volunteer page, the export on
both of its paths and in another zone, the dashboard); and every status filter must agree with
the status shown. Unscoped and state-only accounts keep her global values.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from signup import clock
from signup.admin import dashboard, services
from signup.admin.access import Access, access_for
from signup.calls import services as calls
from signup.extensions import db
from signup.messaging.models import Message, MessageStatus
from signup.users import services as users
from signup.users.models import User, UserCampaign, UserState
from signup.volunteers.export import COLUMNS, CsvExport, VolunteerFilter, iter_rows
from signup.volunteers.models import Volunteer, VolunteerStatus
from tests.integration.admin_helpers import PASSWORD, as_user
from tests.integration.factories import campaign, inbound

pytestmark = pytest.mark.usefixtures("db_session", "fresh_limits")

A_NUMBER, A_OPTOUT = "+918047259725", "+918047259726"
B_NUMBER, B_OPTOUT = "+918047250000", "+918047250001"
PRIYA, QUINN = "+919811100002", "+919811100003"
T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
STATUSES = ("", "active", "opted_out", "imported")
SORTS = ("joined", "oldest", "last_call")
A_SCOPES = ("campaign", "campaign+state")  # every scope that limits to campaign A
ROLES = ("admin", "organiser", "viewer")


@dataclass(frozen=True)
class Seen:
    """The derived values one account should see for a person."""

    status: str
    call_count: int
    first_call_at: datetime | None
    last_call_at: datetime | None
    consent_at: datetime | None
    opted_out_at: datetime | None


# Priya: A at T0, B at T0+2h and T0+3h, opted out of A at T0+4h. Quinn: A at T0+1h.
IN_A = {
    PRIYA: Seen("opted_out", 1, T0, T0, T0, T0 + timedelta(hours=4)),
    QUINN: Seen(
        "active", 1, T0 + timedelta(hours=1), T0 + timedelta(hours=1), T0 + timedelta(hours=1), None
    ),
}
GLOBAL = {
    PRIYA: Seen("active", 3, T0, T0 + timedelta(hours=3), T0 + timedelta(hours=2), None),
    QUINN: IN_A[QUINN],
}


@pytest.fixture
def split(fresh_limits: None) -> Iterator[dict[str, int]]:
    """Priya active in B only, Quinn in A; an account of every role and scope; SMS all sent."""
    a = campaign("alpha-camp", A_NUMBER, A_OPTOUT, name="Alpha")
    campaign("beta-zone", B_NUMBER, B_OPTOUT, name="Beta")
    moments = [
        (PRIYA, A_NUMBER, 0),
        (QUINN, A_NUMBER, 1),
        (PRIYA, B_NUMBER, 2),
        (PRIYA, B_NUMBER, 3),
    ]
    try:
        for phone, to, hours in moments:
            clock.set_clock(lambda hours=hours: T0 + timedelta(hours=hours))
            calls.process_call(inbound(phone, to).id)
        db.session.execute(update(Volunteer).values(state="Bihar"))
        accounts: dict[str, int] = {}
        for role in ROLES:
            for scope in ("none", "state", *A_SCOPES):
                user = users.create_user(
                    email=f"{role}-{scope}@x.org", role=role, password=PASSWORD
                )
                if scope.startswith("campaign"):
                    db.session.add(UserCampaign(user_id=user.id, campaign_id=a.id))
                if scope in ("state", "campaign+state"):
                    db.session.add(UserState(user_id=user.id, state="Bihar"))
                accounts[f"{role}-{scope}"] = user.id
        db.session.flush()
        clock.set_clock(lambda: T0 + timedelta(hours=4))
        priya = db.session.scalar(select(Volunteer.id).where(Volunteer.phone == PRIYA))
        assert priya is not None
        services.opt_out(priya, _access(accounts["admin-campaign"]))
    finally:
        clock.set_clock(None)
    db.session.execute(update(Message).values(status=MessageStatus.SENT))
    db.session.commit()
    yield accounts


def _access(user_id: int) -> Access:
    user = db.session.get(User, user_id)
    assert user is not None
    return access_for(user)


def _expected(scope: str) -> dict[str, Seen]:
    return IN_A if scope.startswith("campaign") else GLOBAL


def _accounts() -> list[tuple[str, str]]:
    return [(role, scope) for role in ROLES for scope in ("none", "state", *A_SCOPES)]


def _csv_cells(seen: Seen, zone: ZoneInfo) -> dict[str, str]:
    def when(value: datetime | None) -> str:
        return value.astimezone(zone).isoformat(timespec="seconds") if value else ""

    return {
        "status": seen.status,
        "call_count": str(seen.call_count),
        "first_call_at": when(seen.first_call_at),
        "last_call_at": when(seen.last_call_at),
        "consent_at": when(seen.consent_at),
        "opted_out_at": when(seen.opted_out_at),
    }


def _rows_by_phone(text: str) -> dict[str, dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return {row["phone"]: row for row in reader}


def _check_csv(rows: dict[str, dict[str, str]], scope: str, status: str, zone: ZoneInfo) -> None:
    """Every derived cell is the scope's; the status filter keeps exactly the matching people."""
    expected = _expected(scope)
    wanted = {p for p, seen in expected.items() if not status or seen.status == status}
    assert set(rows) == wanted, (scope, status)
    for phone in wanted:
        got = {key: rows[phone][key] for key in _csv_cells(expected[phone], zone)}
        assert got == _csv_cells(expected[phone], zone), (scope, status, phone)


@pytest.mark.parametrize(("role", "scope"), _accounts())
def test_list_shows_and_filters_the_scopes_status_calls_and_last_call(
    split: dict[str, int], role: str, scope: str
) -> None:
    access = _access(split[f"{role}-{scope}"])
    expected = _expected(scope)
    for status in STATUSES:
        for sort in SORTS:
            page = services.list_page(
                VolunteerFilter(status=status or None, scope=access), sort=sort
            )
            rows = {row.phone: row for row in page.rows}
            wanted = {p for p, seen in expected.items() if not status or seen.status == status}
            assert set(rows) == wanted, (status, sort)
            for phone in wanted:
                row, seen = rows[phone], expected[phone]
                got = (row.status, row.call_count, row.last_call_at)
                assert got == (seen.status, seen.call_count, seen.last_call_at), (status, sort)


@pytest.mark.parametrize(("role", "scope"), _accounts())
def test_volunteer_page_header_is_the_scopes(
    app: Flask, client: FlaskClient, split: dict[str, int], role: str, scope: str
) -> None:
    as_user(client, f"{role}-{scope}@x.org")
    ids = {phone: i for phone, i in db.session.execute(select(Volunteer.phone, Volunteer.id))}
    for phone, seen in _expected(scope).items():
        page = client.get(f"/admin/volunteers/{ids[phone]}").get_data(as_text=True)
        calls_text = f"{seen.call_count} call" + ("s" if seen.call_count != 1 else "")
        header = page.split("<p>", 1)[1].split("</p>", 1)[0]
        assert f'class="status {seen.status}"' in header, phone
        assert calls_text in header, phone
        record = services.history(ids[phone], _access(split[f"{role}-{scope}"]))
        figures = tuple(getattr(record.seen, name) for name in Seen.__dataclass_fields__)
        assert figures == tuple(getattr(seen, name) for name in Seen.__dataclass_fields__)


@pytest.mark.parametrize(("role", "scope"), [a for a in _accounts() if a[0] != "viewer"])
def test_every_export_path_has_the_scopes_cells(
    app: Flask, client: FlaskClient, split: dict[str, int], role: str, scope: str
) -> None:
    as_user(client, f"{role}-{scope}@x.org")
    access = _access(split[f"{role}-{scope}"])
    zone = ZoneInfo(app.config["SIGNUP_TIMEZONE"])
    for status in STATUSES:
        response = client.get(f"/admin/volunteers/export.csv?status={status}")
        assert response.status_code == 200
        _check_csv(_rows_by_phone(response.get_data(as_text=True)), scope, status, zone)
        filters = VolunteerFilter(status=status or None, scope=access)
        for other in ("UTC", "America/St_Johns"):  # zones whose cells are not stored
            text = b"".join(CsvExport(filters, other)).decode()
            _check_csv(_rows_by_phone(text), scope, status, ZoneInfo(other))
        python = {
            r[0]: dict(zip(COLUMNS, map(str, r), strict=True)) for r in iter_rows(filters, "UTC")
        }
        _check_csv(python, scope, status, ZoneInfo("UTC"))


def _funnel(access: Access) -> dict[str, int]:
    board = dashboard.build(access, "Asia/Kolkata")
    return {str(name): n for name, n in board.funnel}


@pytest.mark.parametrize(("role", "scope"), _accounts())
def test_dashboard_counts_the_scopes_messages_and_opt_outs(
    app: Flask, split: dict[str, int], role: str, scope: str
) -> None:
    access = _access(split[f"{role}-{scope}"])
    funnel = _funnel(access)
    sent = select(Message.id).where(Message.status == MessageStatus.SENT)
    if scope.startswith("campaign"):
        sent = sent.where(access.campaign_condition(Message.campaign_id))
    expected = _expected(scope)
    assert funnel["SMS sent"] == len(db.session.scalars(sent).all())
    assert funnel["Opted out"] == sum(s.status == "opted_out" for s in expected.values())
    if scope.startswith("campaign"):  # A: Priya's and Quinn's welcome, Priya's confirmation
        assert funnel["SMS sent"] == 3


@pytest.mark.parametrize(("role", "scope"), _accounts())
def test_the_status_filter_is_the_status_shown(
    split: dict[str, int], role: str, scope: str
) -> None:
    """Derived.status_is (the filters' form) picks exactly the people whose status is that."""
    db.session.add(Volunteer(phone="+919811100009", status="imported", call_count=0))
    db.session.add(Volunteer(phone="erased-test", status="erased", call_count=0))
    db.session.flush()
    derived = _access(split[f"{role}-{scope}"]).derived()
    for status in VolunteerStatus:
        shown = select(Volunteer.id).where(derived.status == status.value)
        picked = select(Volunteer.id).where(derived.status_is(status.value))
        assert set(db.session.scalars(shown)) == set(db.session.scalars(picked)), status


@pytest.mark.parametrize(("role", "scope"), _accounts())
def test_list_page_shows_the_scopes_statuses(
    client: FlaskClient, split: dict[str, int], role: str, scope: str
) -> None:
    """The rendered list, under every status filter and sort, shows the scope's statuses."""
    as_user(client, f"{role}-{scope}@x.org")
    expected = _expected(scope)
    for status in STATUSES:
        for sort in SORTS:
            page = client.get(f"/admin/volunteers?status={status}&sort={sort}")
            shown = sorted(re.findall(r'<span class="status (\w+)"', page.get_data(as_text=True)))
            wanted = sorted(s.status for s in expected.values() if not status or s.status == status)
            assert shown == wanted, (status, sort)
