"""The organisers' admin: login, roles, scope, list, page, export, and its security."""

from __future__ import annotations

import csv
import io
import re
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from signup.admin.models import AuditEntry
from signup.calls import services as calls
from signup.extensions import db
from signup.messaging.models import Message
from signup.volunteers.models import ConsentEvent, Volunteer
from tests.integration.admin_helpers import (
    A_NUMBER,
    ALICE,
    BOB,
    CHITRA,
    PASSWORD,
    as_user,
    login,
    new_request_globals,
    token,
)
from tests.integration.factories import inbound

pytestmark = pytest.mark.usefixtures("db_session", "fresh_limits")
# --- authentication --------------------------------------------------------------------------

ADMIN_GETS = [
    "/admin/",
    "/admin/volunteers",
    "/admin/volunteers/1",
    "/admin/volunteers/export.csv",
    "/admin/audit",
    "/admin/volunteers/1/opt-out",
    "/admin/volunteers/1/erase",
]


@pytest.mark.parametrize("path", ADMIN_GETS)
def test_every_admin_route_without_a_session_redirects_to_login(
    client: FlaskClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")


def test_login_then_logout(client: FlaskClient, world: dict[str, Any]) -> None:
    response = login(client, "ADMIN@x.org ")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/volunteers"
    assert client.get("/admin/volunteers").status_code == 200
    client.post("/admin/logout", data={"csrf_token": token(client, "/admin/volunteers")})
    assert client.get("/admin/volunteers").status_code == 302


def test_unknown_and_wrong_accounts_get_the_same_answer(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    wrong = login(client, "admin@x.org", "not the password")
    unknown = login(client, "nobody@x.org", "not the password")
    assert wrong.status_code == unknown.status_code == 200
    strip = re.compile(r'value="[^"]*"')
    assert strip.sub("", wrong.get_data(as_text=True)) == strip.sub(
        "", unknown.get_data(as_text=True)
    )
    assert "Email or password is incorrect." in wrong.get_data(as_text=True)


def test_login_without_csrf_token_fails(client: FlaskClient, world: dict[str, Any]) -> None:
    response = client.post("/admin/login", data={"email": "admin@x.org", "password": PASSWORD})
    assert response.status_code != 302
    assert client.get("/admin/volunteers").status_code == 302


def test_next_never_leaves_the_admin(client: FlaskClient, world: dict[str, Any]) -> None:
    for target, expected in (
        ("https://evil.example/x", "/admin/volunteers"),
        ("//evil.example", "/admin/volunteers"),
        ("/admin/audit", "/admin/audit"),
    ):
        client.get("/admin/login")
        response = client.post(
            f"/admin/login?next={target}",
            data={"email": "admin@x.org", "password": PASSWORD, "csrf_token": token(client)},
        )
        assert response.headers["Location"] == expected
        client.post("/admin/logout", data={"csrf_token": token(client, "/admin/volunteers")})


def test_failed_logins_are_throttled_per_account(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    assert app.config["ADMIN_LOGIN_ACCOUNT_LIMIT"] == "100/hour"  # the product's default
    app.config["ADMIN_LOGIN_ACCOUNT_LIMIT"] = "5/hour"
    try:
        for i in range(5):  # from five addresses: only the account throttle can trip
            login(client, "admin@x.org", "wrong", environ_base={"REMOTE_ADDR": f"10.0.0.{i}"})
        blocked = login(client, "admin@x.org", environ_base={"REMOTE_ADDR": "10.0.0.99"})
        assert blocked.status_code == 429  # even the right password, for now
        other = login(client, "org@x.org", environ_base={"REMOTE_ADDR": "10.0.0.99"})
        assert other.status_code == 302
    finally:
        app.config["ADMIN_LOGIN_ACCOUNT_LIMIT"] = "100/hour"


def test_failed_logins_are_throttled_per_address(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    app.config["ADMIN_LOGIN_ADDRESS_LIMIT"] = "3/minute"
    try:
        for email in ("a@x.org", "b@x.org", "c@x.org"):
            assert login(client, email, "wrong").status_code == 200
        assert login(client, "admin@x.org").status_code == 429
        assert "Too many attempts" in login(client, "nobody@x.org", "x").get_data(as_text=True)
    finally:
        app.config["ADMIN_LOGIN_ADDRESS_LIMIT"] = "20/minute;300/hour"


def test_session_cookie_flags(world: dict[str, Any]) -> None:
    from signup import create_app
    from tests.helpers import base_config

    config = base_config()
    del config["SESSION_COOKIE_SECURE"]  # production's own default
    production = create_app(config)
    client = production.test_client()
    response = login(client, "admin@x.org")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_an_idle_session_ends(client: FlaskClient, world: dict[str, Any]) -> None:
    as_user(client, "admin@x.org")
    with client.session_transaction() as session:
        session["seen"] = time.time() - 31 * 60
    response = client.get("/admin/volunteers")
    assert response.status_code == 302 and "expired=1" in response.headers["Location"]
    assert client.get("/admin/volunteers").status_code == 302


# --- roles and scope ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "allowed"),
    [
        ("admin@x.org", {"export", "audit", "opt-out", "erase", "edit"}),
        ("org@x.org", {"export", "edit"}),
        ("view@x.org", set()),
    ],
)
def test_roles(client: FlaskClient, world: dict[str, Any], email: str, allowed: set[str]) -> None:
    as_user(client, email)
    vid = world["ids"][ALICE]
    checks = {
        "export": client.get("/admin/volunteers/export.csv").status_code,
        "audit": client.get("/admin/audit").status_code,
        "opt-out": client.get(f"/admin/volunteers/{vid}/opt-out").status_code,
        "erase": client.get(f"/admin/volunteers/{vid}/erase").status_code,
        "edit": client.post(
            f"/admin/volunteers/{vid}",
            data={"name": "Asha", "csrf_token": token(client, f"/admin/volunteers/{vid}")},
        ).status_code,
    }
    for name, status in checks.items():
        assert (status in (200, 302)) == (name in allowed), (name, status)
        if name not in allowed:
            assert status == 403


def test_viewer_never_sees_a_full_number(client: FlaskClient, world: dict[str, Any]) -> None:
    as_user(client, "view@x.org")
    pages = [client.get("/admin/volunteers").get_data(as_text=True)]
    pages += [
        client.get(f"/admin/volunteers/{vid}").get_data(as_text=True)
        for vid in world["ids"].values()
    ]
    pages.append(client.get(f"/admin/volunteers?q={ALICE}").get_data(as_text=True))
    for page in pages:
        for phone in (ALICE, BOB, CHITRA):
            assert phone[3:] not in page
    assert "+91 99XXX XX181" in pages[0]


def rows_of(page: str) -> set[str]:
    return set(re.findall(r'href="/admin/volunteers/(\d+)"', page))


def test_campaign_scope_limits_every_view(client: FlaskClient, world: dict[str, Any]) -> None:
    as_user(client, "org-b@x.org")
    ids = world["ids"]
    listed = rows_of(client.get("/admin/volunteers").get_data(as_text=True))
    assert listed == {str(ids[BOB]), str(ids[CHITRA])}
    assert client.get(f"/admin/volunteers/{ids[ALICE]}").status_code == 404
    exported = client.get("/admin/volunteers/export.csv").get_data(as_text=True)
    phones = [r["phone"] for r in csv.DictReader(io.StringIO(exported.lstrip("\ufeff")))]
    assert sorted(phones) == [BOB, CHITRA]
    assert "Alpha" not in client.get("/admin/volunteers").get_data(as_text=True)


def test_state_scope(client: FlaskClient, world: dict[str, Any]) -> None:
    as_user(client, "view-kerala@x.org")
    listed = rows_of(client.get("/admin/volunteers").get_data(as_text=True))
    assert listed == {str(world["ids"][BOB])}


# --- list --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=099112%2078181", {ALICE}),
        ("q=919911278182", {BOB}),
        ("q=8182", {BOB}),  # the last digits of a number
        ("q=278%20182", {BOB}),
        ("q=%E0%A5%AE%E0%A5%A7%E0%A5%AE%E0%A5%A8", {BOB}),  # the same in Devanagari digits
        ("q=27818", set()),  # the end of a number, not its middle
        ("q=78181", {ALICE}),
        ("campaign=b", {BOB, CHITRA}),
        ("state=Bihar", {ALICE, CHITRA}),
        ("status=opted_out", set()),
        ("joined_from=2000-01-01", {ALICE, BOB, CHITRA}),
        ("joined_to=2000-01-01", set()),
    ],
)
def test_list_search_and_filters(
    client: FlaskClient, world: dict[str, Any], query: str, expected: set[str]
) -> None:
    as_user(client, "admin@x.org")
    listed = rows_of(client.get(f"/admin/volunteers?{query}").get_data(as_text=True))
    assert listed == {str(world["ids"][p]) for p in expected}


def test_keyset_pages_cover_everyone_once(client: FlaskClient, world: dict[str, Any]) -> None:
    for i in range(120):
        calls.process_call(inbound(f"+9198765{i:05d}", A_NUMBER).id)
    db.session.commit()
    as_user(client, "admin@x.org")
    for sort in ("joined", "oldest", "last_call"):
        seen: list[str] = []
        url = f"/admin/volunteers?sort={sort}"
        pages = 0
        while url:
            html = client.get(url).get_data(as_text=True)
            seen += re.findall(r'href="/admin/volunteers/(\d+)"', html)
            found = re.search(r'href="(/admin/volunteers\?[^"]*after=[^"]+)"', html)
            url = found.group(1).replace("&amp;", "&") if found else ""
            pages += 1
        assert len(seen) == len(set(seen)) == 123, sort
        assert pages == 3


def test_a_bad_cursor_or_sort_is_a_clear_400(client: FlaskClient, world: dict[str, Any]) -> None:
    as_user(client, "admin@x.org")
    assert client.get("/admin/volunteers?after=%%%").status_code == 400
    assert client.get("/admin/volunteers?sort=bogus").status_code == 400
    assert client.get("/admin/volunteers?joined_from=yesterday").status_code == 400


# --- the volunteer page ------------------------------------------------------------------------


def test_page_shows_calls_messages_and_consent(client: FlaskClient, world: dict[str, Any]) -> None:
    as_user(client, "admin@x.org")
    html = client.get(f"/admin/volunteers/{world['ids'][CHITRA]}").get_data(as_text=True)
    assert "Consent history" in html and "consent given" in html and "missed call" in html
    assert "welcome SMS" in html and "joined" in html and ">v1<" in html


def test_organiser_edits_and_the_edit_is_audited(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    as_user(client, "org@x.org")
    vid = world["ids"][ALICE]
    response = client.post(
        f"/admin/volunteers/{vid}",
        data={
            "name": "आशा",
            "notes": "Booth 42",
            "pincode": "800001",
            "csrf_token": token(client, f"/admin/volunteers/{vid}"),
        },
    )
    assert response.status_code == 302
    volunteer = db.session.get(Volunteer, vid, populate_existing=True)
    assert volunteer is not None and (volunteer.name, volunteer.notes) == ("आशा", "Booth 42")
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry is not None and entry.action == "edit" and "pincode" in entry.detail
    bad = client.post(
        f"/admin/volunteers/{vid}",
        data={"pincode": "0123", "csrf_token": token(client, f"/admin/volunteers/{vid}")},
        follow_redirects=True,
    )
    assert "PIN code must be 6 digits" in bad.get_data(as_text=True)


def test_cross_site_post_without_csrf_token_fails(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    as_user(client, "admin@x.org")
    vid = world["ids"][ALICE]
    for path in (
        f"/admin/volunteers/{vid}",
        f"/admin/volunteers/{vid}/erase",
        f"/admin/volunteers/{vid}/opt-out",
        "/admin/logout",
    ):
        assert client.post(path, data={"name": "Evil"}).status_code == 400
    volunteer = db.session.get(Volunteer, vid, populate_existing=True)
    assert volunteer is not None and volunteer.status == "active" and volunteer.name is None


def test_admin_opts_out_after_confirming(client: FlaskClient, world: dict[str, Any]) -> None:
    as_user(client, "admin@x.org")
    vid = world["ids"][ALICE]
    page = client.get(f"/admin/volunteers/{vid}/opt-out")
    assert "Opt out" in page.get_data(as_text=True)
    response = client.post(
        f"/admin/volunteers/{vid}/opt-out",
        data={"csrf_token": token(client, f"/admin/volunteers/{vid}/opt-out")},
    )
    assert response.status_code == 302
    volunteer = db.session.get(Volunteer, vid, populate_existing=True)
    assert volunteer is not None and volunteer.status == "opted_out"
    last = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
    assert last is not None and (last.event, last.channel) == ("withdrawn", "organiser")
    kinds = {m.kind for m in db.session.scalars(select(Message).where(Message.volunteer_id == vid))}
    assert kinds == {"onboarding", "optout_confirmation"}


def test_admin_erases_after_confirming(client: FlaskClient, world: dict[str, Any]) -> None:
    as_user(client, "admin@x.org")
    vid = world["ids"][ALICE]
    response = client.post(
        f"/admin/volunteers/{vid}/erase",
        data={"csrf_token": token(client, f"/admin/volunteers/{vid}/erase")},
    )
    assert response.status_code == 302
    assert client.get(f"/admin/volunteers/{vid}").status_code == 404
    volunteer = db.session.get(Volunteer, vid, populate_existing=True)
    assert volunteer is not None and volunteer.status == "erased"


# --- export ------------------------------------------------------------------------------------


def test_export_is_filtered_formula_safe_and_audited(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    db.session.query(Volunteer).filter_by(phone=CHITRA).update(
        {"name": '=HYPERLINK("http://x","y")'}
    )
    db.session.commit()
    as_user(client, "org@x.org")
    response = client.get("/admin/volunteers/export.csv?campaign=a&q=%2B919911278183")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    [row] = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert row["phone"] == CHITRA and row["name"] == '\'=HYPERLINK("http://x","y")'
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry is not None
    assert (entry.action, entry.row_count) == ("export", 1)
    assert '"campaign": "a"' in entry.detail and CHITRA not in entry.detail
    as_user(client, "admin@x.org")
    assert "export" in client.get("/admin/audit").get_data(as_text=True)


def test_security_headers_everywhere(client: FlaskClient) -> None:
    for path in ("/admin/login", "/healthz"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "max-age" in headers["Strict-Transport-Security"]  # PUBLIC_BASE_URL is https
    assert client.get("/admin/login").headers["Cache-Control"] == "no-store"


# --- dashboard ---------------------------------------------------------------------------------


def test_dashboard_counts_calls_by_local_hour_and_day(app: Flask, world: dict[str, Any]) -> None:
    from datetime import UTC, datetime, timedelta

    from signup import clock
    from signup.admin import dashboard
    from signup.admin.access import Access
    from signup.calls.models import Call
    from signup.users.models import Role

    now = datetime(2026, 11, 21, 6, 45, tzinfo=UTC)  # 12:15 in India
    db.session.query(Call).update({"received_at": now - timedelta(minutes=50)})  # 11:25 IST
    for minutes in (5, 10, 60 * 24):  # two this hour (12:10, 12:05), one yesterday
        call = inbound("+919811111111", "+918000000000")
        call.received_at = now - timedelta(minutes=minutes)
        db.session.flush()
        calls.process_call(call.id)
    clock.set_clock(lambda: now)
    try:
        board = dashboard.build(Access(0, Role.ADMIN), "Asia/Kolkata")
    finally:
        clock.set_clock(None)
    hours = dict(board.calls_by_hour)
    assert hours["21 Nov 12:00"] == 2 and hours["21 Nov 11:00"] == 4
    assert hours["20 Nov 12:00"] == 1 and sum(hours.values()) == 7
    days = dict(board.calls_by_day)
    assert days["21 Nov"] == 6 and days["20 Nov"] == 1 and len(days) == 30
    funnel = dict(board.funnel)
    assert funnel["Missed calls"] == 7 and funnel["Unique callers"] == 4
    assert funnel["Volunteers"] == 3 and funnel["SMS sent"] == 0
    assert board.unrouted == [("+918000000000", 3)]
    assert dict(board.by_state) == {"Bihar": 2, "Kerala": 1}
    assert {slug: (active, out) for slug, _, active, out in board.campaigns} == {
        "a": (2, 0),
        "b": (2, 0),
    }


def test_dashboard_page_respects_role_and_scope(client: FlaskClient, world: dict[str, Any]) -> None:
    calls.process_call(inbound("+919811111111", "+918000000000").id)  # an unrouted call
    db.session.commit()
    as_user(client, "org-b@x.org")
    html = client.get("/admin/").get_data(as_text=True)
    assert "Dashboard" in html and "Beta" in html and "Alpha" not in html
    assert "Unrouted calls" not in html
    as_user(client, "admin@x.org")
    html = client.get("/admin/").get_data(as_text=True)
    assert "Unrouted calls" in html and "+918000000000" in html
    assert "<script" not in html  # charts are SVG: nothing for the CSP to allow


def test_a_pin_code_fills_state_and_district(client: FlaskClient, world: dict[str, Any]) -> None:
    as_user(client, "org@x.org")
    vid = world["ids"][BOB]  # in Kerala so far
    page = f"/admin/volunteers/{vid}"
    client.post(
        page,
        data={
            "pincode": "560001",
            "state": "Kerala",
            "district": "",
            "csrf_token": token(client, page),
        },
    )
    volunteer = db.session.get(Volunteer, vid, populate_existing=True)
    assert volunteer is not None
    assert (volunteer.pincode, volunteer.state, volunteer.district) == (
        "560001",
        "Karnataka",
        "Bengaluru Urban",
    )
    client.post(
        page,
        data={
            "pincode": "110025",
            "state": "Karnataka",
            "district": "Bengaluru Urban",
            "csrf_token": token(client, page),
        },
    )
    db.session.refresh(volunteer)
    assert (volunteer.state, volunteer.district) == ("Delhi", None)  # it spans three districts
    unknown = client.post(
        page, data={"pincode": "999999", "csrf_token": token(client, page)}, follow_redirects=True
    )
    assert "not in India Post" in unknown.get_data(as_text=True)


# --- user management ---------------------------------------------------------------------------


def test_admin_creates_a_scoped_account_that_can_log_in(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    from signup.users.models import User

    as_user(client, "admin@x.org")
    response = client.post(
        "/admin/users",
        data={
            "email": "district@x.org",
            "password": "a long enough password",
            "role": "viewer",
            "campaigns": [str(world["b"].id)],
            "states": "Kerala, ",
            "csrf_token": token(client, "/admin/users"),
        },
    )
    assert response.status_code == 302
    created = db.session.scalar(select(User).where(User.email == "district@x.org"))
    assert created is not None and created.role == "viewer"
    client.post("/admin/logout", data={"csrf_token": token(client, "/admin/volunteers")})
    assert login(client, "district@x.org", "a long enough password").status_code == 302
    listed = rows_of(client.get("/admin/volunteers").get_data(as_text=True))
    assert listed == {str(world["ids"][BOB])}  # campaign b and Kerala


def test_admin_deactivates_an_account_and_its_session_ends(
    app: Flask, world: dict[str, Any]
) -> None:
    from signup.users.models import User

    organiser = app.test_client()
    as_user(organiser, "org@x.org")
    new_request_globals()
    admin = app.test_client()
    as_user(admin, "admin@x.org")
    account = db.session.scalar(select(User).where(User.email == "org@x.org"))
    assert account is not None
    admin.post(
        f"/admin/users/{account.id}",
        data={"role": "organiser", "csrf_token": token(admin, "/admin/users")},
    )  # active unticked
    new_request_globals()
    assert organiser.get("/admin/volunteers").status_code == 302
    new_request_globals()
    assert login(organiser, "org@x.org").status_code == 200  # refused like a wrong password


def test_an_admin_cannot_lock_themselves_out(client: FlaskClient, world: dict[str, Any]) -> None:
    from signup.users.models import User

    as_user(client, "admin@x.org")
    me = db.session.scalar(select(User).where(User.email == "admin@x.org"))
    assert me is not None
    page = client.post(
        f"/admin/users/{me.id}",
        data={"role": "viewer", "active": "on", "csrf_token": token(client, "/admin/users")},
        follow_redirects=True,
    )
    assert "cannot remove your own admin role" in page.get_data(as_text=True)
    db.session.refresh(me)
    assert me.role == "admin"


def test_bad_new_account_is_refused(client: FlaskClient, world: dict[str, Any]) -> None:
    as_user(client, "admin@x.org")
    response = client.post(
        "/admin/users",
        data={
            "email": "x@x.org",
            "password": "short",
            "role": "viewer",
            "csrf_token": token(client, "/admin/users"),
        },
    )
    assert response.status_code == 400 and "at least 12" in response.get_data(as_text=True)


@pytest.mark.parametrize("email", ["org@x.org", "view@x.org"])
def test_only_admins_manage_users(client: FlaskClient, world: dict[str, Any], email: str) -> None:
    as_user(client, email)
    assert client.get("/admin/users").status_code == 403
    assert (
        client.post(
            "/admin/users/1",
            data={"role": "admin", "csrf_token": token(client, "/admin/volunteers")},
        ).status_code
        == 403
    )


# --- campaigns ---------------------------------------------------------------------------------


def campaign_form(**values: str) -> dict[str, str]:
    form = {
        "name": "Gamma",
        "number": "080 4725 1111",
        "optout_number": "",
        "language": "hi",
        "quiet_hours": "",
        "sms_text": "",
        "optout_text": "",
        "help_text": "",
    }
    form.update(values)
    return form


def test_admin_creates_and_changes_a_campaign(client: FlaskClient, world: dict[str, Any]) -> None:
    from signup.campaigns.models import Campaign

    as_user(client, "admin@x.org")
    created = client.post(
        "/admin/campaigns",
        data={"slug": "gamma", **campaign_form(), "csrf_token": token(client, "/admin/campaigns")},
    )
    assert created.status_code == 302 and created.headers["Location"] == "/admin/campaigns/gamma"
    page = client.get("/admin/campaigns/gamma").get_data(as_text=True)
    assert "UCS-2" in page and "notice v1" in page and "segments.js" in page
    changed = client.post(
        "/admin/campaigns/gamma",
        data={
            "action": "settings",
            **campaign_form(
                language="en",
                optout_number="08047251112",
                sms_text="{campaign}: welcome! Leave: missed call {optout_number}.",
            ),
            "csrf_token": token(client, "/admin/campaigns/gamma"),
        },
        follow_redirects=True,
    )
    html = changed.get_data(as_text=True)
    assert "Saved." in html and "notice v2" in html
    assert "Gamma: welcome! Leave: missed call +918047251112." in html
    gamma = db.session.scalar(select(Campaign).where(Campaign.slug == "gamma"))
    assert gamma is not None and gamma.optout_number == "+918047251112"


def test_campaign_errors_are_shown_and_change_nothing(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    as_user(client, "admin@x.org")
    taken = client.post(
        "/admin/campaigns",
        data={
            "slug": "dup",
            **campaign_form(number=A_NUMBER),
            "csrf_token": token(client, "/admin/campaigns"),
        },
    )
    assert taken.status_code == 400 and "already belongs to another campaign" in taken.get_data(
        as_text=True
    )
    mismatch = client.post(
        "/admin/campaigns/a",
        data={
            "action": "template",
            "kind": "onboarding",
            "template_id": "1107160000000012345",
            "text": "Hello {#var#}",
            "csrf_token": token(client, "/admin/campaigns/a"),
        },
        follow_redirects=True,
    )
    assert "would not match" in mismatch.get_data(as_text=True)


def test_admin_adds_a_blackout_in_local_time(client: FlaskClient, world: dict[str, Any]) -> None:
    from signup.campaigns.models import Blackout

    as_user(client, "admin@x.org")
    client.post(
        "/admin/campaigns/a",
        data={
            "action": "blackout",
            "starts_at": "2030-05-01T18:00",
            "ends_at": "2030-05-03T18:00",
            "reason": "poll",
            "csrf_token": token(client, "/admin/campaigns/a"),
        },
    )
    blackout = db.session.scalar(select(Blackout))
    assert blackout is not None
    assert blackout.starts_at.isoformat() == "2030-05-01T12:30:00+00:00"  # 18:00 in India
    assert "2030-05-01 18:00" in client.get("/admin/campaigns/a").get_data(as_text=True)


@pytest.mark.parametrize("email", ["org@x.org", "view@x.org"])
def test_only_admins_manage_campaigns(
    client: FlaskClient, world: dict[str, Any], email: str
) -> None:
    as_user(client, email)
    assert client.get("/admin/campaigns").status_code == 403
    assert client.get("/admin/campaigns/a").status_code == 403


def test_the_live_segment_counter_agrees_with_the_server(tmp_path: Any) -> None:
    """Run segments.js in Chromium's JavaScript engine against segments.count."""
    import json
    import subprocess
    from pathlib import Path

    from signup.messaging.segments import count

    samples = [
        "a" * 160,
        "a" * 161,
        "[" * 81,
        "€" + "a" * 159,
        "न" * 70,
        "न" * 135,
        "Jan Seva: join us",
    ]
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    script = Path("signup/admin/static/segments.js").read_text()
    html = (
        "<html><body>"
        + "".join(
            f'<form><textarea data-segments id="t{i}">{s}</textarea></form>'
            for i, s in enumerate(samples)
        )
        + f"<script>{script}</script><script>document.addEventListener('DOMContentLoaded',"
        "()=>{document.title=JSON.stringify([...document.querySelectorAll('small.segments')]"
        ".map(e=>e.textContent))})</script></body></html>"
    )
    page = tmp_path / "segments.html"
    page.write_text(html, encoding="utf-8")
    result = subprocess.run(
        [
            "/usr/bin/chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    title = re.search(r"<title>(.*?)</title>", result.stdout, re.S)
    assert title, result.stderr[-500:]
    shown = json.loads(title.group(1).replace("&quot;", '"'))
    for sample, text in zip(samples, shown, strict=True):
        expected = count(sample)
        assert (
            f": {expected.encoding} · {expected.units} characters · {expected.segments} segment"
            in text
        ), (sample[:10], text)
