"""Hostile input to every admin route: a 400 (or a refusal), never a 500, and nothing logged.

The routes come from the app's url_map, so a new admin page is fuzzed without being listed
here. Each request fills the route's path arguments, query string and form with NUL bytes,
huge values, odd unicode, impossible dates, forged page cursors, CRLF and unknown ids.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from werkzeug.routing import Rule

from signup.admin.models import ImportBatch
from signup.admin.tasks import read_import
from signup.extensions import db
from signup.users import services as user_services
from tests.integration.admin_helpers import (
    A_NUMBER,
    ALICE,
    BOB,
    CHITRA,
    PASSWORD,
    as_user,
    new_request_globals,
    token,
)

pytestmark = pytest.mark.usefixtures("db_session")

# Every name an admin view reads from the query string or a form, and then some.
FIELDS = [
    "campaign", "status", "q", "state", "district", "joined_from", "joined_to", "sort", "after",
    "next", "expired", "email", "password", "name", "notes", "pincode", "language", "role",
    "active", "campaigns", "states", "slug", "number", "optout_number", "sms_text",
    "optout_text", "help_text", "quiet_hours", "action", "entity_id", "header", "kind",
    "template_id", "text", "starts_at", "ends_at", "reason",
]  # fmt: skip
HOSTILE = [
    "",
    "\x00",
    "Asha\x00",
    "a\x00b",
    "x" * 5000,
    "9" * 400,
    "W10=",  # base64 of []
    "e30=",  # base64 of {}
    "WyJ4Il0=",  # base64 of ["x"]
    "WyJ4IiwgInkiXQ==",  # base64 of ["x", "y"]
    "WzEsIDIsIDNd",  # base64 of [1, 2, 3]
    "W251bGxd",  # base64 of [null]
    "WzFlOTk5XQ==",  # base64 of [1e999]
    "!!!!",
    "9999-12-31",
    "0001-01-01",
    "2026-02-30",
    "२०२६-११-२१",
    "2026-05-01T18:00",
    "9999-12-31T23:59+05:30",
    "0001-01-01T00:00",
    "0001-01-01T00:00+05:30",
    "9999-12-31T23:59",
    "9999-12-31T23:59-23:59",
    "1899-12-31T23:59",
    "3000-01-01T00:00",
    "2026-02-30T10:00",
    "2026-05-01T25:00",
    "२०२६-०५-०१T18:00",
    "2026-05-01T18:00:00.123456+14:00",
    "/admin\r\nSet-Cookie: x=1",
    "/admin/\r\n",
    "\r\n",
    "//evil.example/admin",
    "/admin@evil.example",
    "99999999999999999999",
    "2147483648",
    "-1",
    "0",
    "1",
    "2",
    "active",
    "opted_out",
    "erased",
    "last_call",
    "admin",
    "organiser",
    "onboarding",
    "settings",
    "dlt",
    "template",
    "blackout",
    "on",
    "a",
    "b",
    "💥",
    "\u202e\u0000",
    "\ufeff",
    "ñ" * 300,
    "' OR 1=1 --",
    "{campaign:>99}",
    "%00",
    "=cmd|'/C calc'!A0",
    ALICE,
    "99112 78181",
]
printable = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40)
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23))
# What a date or datetime-local input sends (and what a hand-made request can), any year 1-9999.
moments = st.one_of(
    st.dates().map(date.isoformat),
    st.datetimes().map(lambda moment: moment.isoformat(timespec="minutes")),
    st.datetimes(timezones=st.builds(timezone, offsets)).map(datetime.isoformat),
)
values = st.one_of(st.sampled_from(HOSTILE), printable, st.text(max_size=40), moments)
fields = st.lists(
    st.tuples(st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=10)), values),
    max_size=8,
)
PATH_VALUES = ["1", "2", "3", "0", "999999", "2147483648", "99999999999999999999", "a", "b"]


def admin_rules(app: Flask) -> list[Rule]:
    """Every admin route but the static files."""
    return sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("admin.") and rule.endpoint != "admin.static"
        ),
        key=lambda rule: rule.rule,
    )


def fill(rule: Rule, value: str) -> str:
    """The rule's path with every argument set to `value` (or an int when it wants one)."""
    path = rule.rule
    for name in rule.arguments:
        converter = rule._converters[name]
        shown = value if type(converter).__name__ != "IntegerConverter" or value.isdigit() else "1"
        path = path.replace(f"<{converter_spec(rule, name)}>", shown)
    return path


def converter_spec(rule: Rule, name: str) -> str:
    """How the argument is written in the rule, e.g. `int:volunteer_id` or `slug`."""
    for part in rule.rule.split("<")[1:]:
        spec = part.split(">", 1)[0]
        if spec.split(":")[-1] == name:
            return spec
    raise AssertionError(name)


def logged_data(records: list[logging.LogRecord], secrets: list[str]) -> list[str]:
    """Log lines at ERROR or above, and any line that carries a secret."""
    found = []
    for record in records:
        text = record.getMessage() + " " + " ".join(map(str, record.__dict__.values()))
        if record.levelno >= logging.ERROR or any(secret in text for secret in secrets):
            found.append(text[:300])
    return found


def logged_in(client: FlaskClient, email: str = "admin@x.org") -> str:
    """Log the account in again when an example logged out; returns a CSRF token."""
    new_request_globals()
    page = client.get("/admin/volunteers")
    if page.status_code != 200:
        new_request_globals()
        as_user(client, email)
    new_request_globals()
    csrf = token(client, "/admin/volunteers")
    new_request_globals()
    return csrf


@pytest.fixture
def answers_500(app: Flask) -> Iterator[None]:
    """A 500 is an answer here, as in production, not an exception raised into the test."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    yield
    app.config["PROPAGATE_EXCEPTIONS"] = None


@pytest.fixture
def admin(client: FlaskClient, world: dict[str, Any], answers_500: None) -> FlaskClient:
    return as_user(client, "admin@x.org")


# Every role, and accounts limited to a campaign or a state.
ACCOUNTS = ["admin@x.org", "org@x.org", "org-b@x.org", "view@x.org", "view-kerala@x.org"]


@pytest.mark.parametrize("email", ACCOUNTS)
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_admin_route_answers_500_to_hostile_input(
    app: Flask,
    client: FlaskClient,
    world: dict[str, Any],
    answers_500: None,
    caplog: pytest.LogCaptureFixture,
    email: str,
    data: st.DataObject,
) -> None:
    admin = client
    rule = data.draw(st.sampled_from(admin_rules(app)))
    method = data.draw(st.sampled_from(sorted(rule.methods - {"HEAD", "OPTIONS"})))
    path = fill(rule, data.draw(st.sampled_from(PATH_VALUES + HOSTILE[:6])))
    query = data.draw(fields)
    form = data.draw(fields)
    csrf = logged_in(admin, email)
    body: dict[str, Any] = {}
    for name, value in form:
        body.setdefault(name, []).append(value)
    if data.draw(st.sampled_from([True, True, True, False])):
        body["csrf_token"] = csrf
    if rule.endpoint == "admin.import_upload" and data.draw(st.booleans()):
        content = "phone,name\n" + "\n".join(f"{v[:20]},{n[:50]}" for n, v in form)
        body["file"] = (io.BytesIO(content.encode("utf-8", "replace")), "list.csv")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        response = admin.open(path, method=method, query_string=query, data=body)
    status = response.status_code
    event(f"{rule.endpoint} {method} {status}")
    assert status < 500, (method, path, query, form, status)
    if status == 400 and response.mimetype == "text/plain":
        assert len(response.get_data(as_text=True).strip().splitlines()) == 1
    location = response.headers.get("Location", "")
    assert "\r" not in location and "\n" not in location
    assert logged_data(caplog.records, [ALICE[3:], BOB[3:], CHITRA[3:]]) == []


TEMPLATES = Path(__file__).resolve().parents[2] / "signup" / "admin" / "templates" / "admin"
DATE_INPUT = re.compile(r'<input\b[^>]*\btype="(?:date|datetime-local)"[^>]*>')
NAME = re.compile(r'\bname="(\w+)"')


def test_every_date_input_of_the_admin_is_fuzzed() -> None:
    """A new date or datetime-local field in a template must be in FIELDS, so it is fuzzed."""
    inputs = [
        tag for page in TEMPLATES.glob("*.html") for tag in DATE_INPUT.findall(page.read_text())
    ]
    names = {name for tag in inputs for name in NAME.findall(tag)}
    assert len(names) == len(inputs)
    assert names and names <= set(FIELDS), names - set(FIELDS)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(starts=st.one_of(moments, st.sampled_from(HOSTILE)), ends=st.one_of(moments, st.text()))
def test_any_blackout_times_are_saved_or_refused_in_one_line(
    client: FlaskClient, world: dict[str, Any], answers_500: None, starts: str, ends: str
) -> None:
    """Finding 1: the blackout form never answers 500, and keeps only sane, bounded periods."""
    from signup.campaigns.models import Blackout

    csrf = logged_in(client)
    db.session.execute(delete(Blackout))
    response = client.post(
        "/admin/campaigns/a",
        data={"action": "blackout", "starts_at": starts, "ends_at": ends, "csrf_token": csrf},
    )
    assert response.status_code in (302, 400), (starts, ends, response.status_code)
    for row in db.session.scalars(select(Blackout)):
        assert row.starts_at.year >= 1900 and row.ends_at.year <= 2999
        assert timedelta(0) < row.ends_at - row.starts_at <= timedelta(days=90)


# --- the inputs the review reported, each checked by name --------------------------------------

REPORTED = [
    ("/admin/volunteers", {"after": "W10="}),
    ("/admin/volunteers", {"after": "WyJ4Il0="}),
    ("/admin/volunteers", {"sort": "last_call", "after": "WyJ4Il0="}),
    ("/admin/volunteers", {"sort": "last_call", "after": "WyIyMDI2LTAxLTAxIiwgMV0="}),
    ("/admin/volunteers", {"sort": "oldest", "after": "WzFlOTk5XQ=="}),
    ("/admin/volunteers", {"joined_from": "9999-12-31"}),
    ("/admin/volunteers", {"joined_to": "9999-12-31"}),
    ("/admin/volunteers", {"joined_to": "0001-01-01"}),
    ("/admin/volunteers", {"q": "Asha\x00"}),
    ("/admin/volunteers", {"state": "Bihar\x00"}),
    ("/admin/volunteers", {"campaign": "a\x00"}),
    ("/admin/volunteers", {"district": "x\r\ny"}),
    ("/admin/volunteers/export.csv", {"joined_from": "9999-12-31"}),
    ("/admin/volunteers/export.csv", {"q": "\x00"}),
    ("/admin/volunteers/export.csv", {"campaign": "a\r\nb"}),
]


@pytest.mark.parametrize(("path", "query"), REPORTED)
def test_each_reported_input_is_a_400(
    admin: FlaskClient, caplog: pytest.LogCaptureFixture, path: str, query: dict[str, str]
) -> None:
    with caplog.at_level(logging.INFO):
        response = admin.get(path, query_string=query)
    assert response.status_code == 400
    if response.mimetype == "text/plain":
        assert len(response.get_data(as_text=True).strip().splitlines()) == 1
    assert logged_data(caplog.records, [ALICE[3:], BOB[3:], CHITRA[3:]]) == []


@pytest.mark.parametrize("target", ["/admin/volunteers\r\nSet-Cookie: x=1", "/admin\n", "//x.org"])
def test_a_crlf_or_foreign_next_falls_back_to_the_list(
    client: FlaskClient, world: dict[str, Any], target: str
) -> None:
    response = client.post(
        "/admin/login",
        query_string={"next": target},
        data={"email": "admin@x.org", "password": PASSWORD, "csrf_token": token(client)},
    )
    assert response.status_code in (302, 400)
    assert response.headers.get("Location", "/admin/volunteers") == "/admin/volunteers"


@pytest.mark.parametrize("campaign_id", ["99999", "2147483647", "99999999999999999999"])
def test_an_unknown_campaign_in_a_users_scope_is_refused(
    admin: FlaskClient, world: dict[str, Any], campaign_id: str
) -> None:
    account = next(u for u in user_services.list_users() if u.email == "view@x.org")
    response = admin.post(
        f"/admin/users/{account.id}",
        data={"role": "viewer", "campaigns": campaign_id, "csrf_token": logged_in(admin)},
    )
    assert response.status_code == 302
    assert user_services.scope_of(account)[0] == []


def test_a_nul_in_an_imported_name_is_one_line_and_logs_no_row(
    admin: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    rows = "phone,name\n+919911278184,Asha\n+919911278185,Ra\x00vi\n"
    with caplog.at_level(logging.INFO):
        response = admin.post(
            "/admin/import",
            data={"csrf_token": logged_in(admin), "file": (io.BytesIO(rows.encode()), "l.csv")},
        )
        # The upload is only stored; the import task reads it, off the request path.
        assert response.status_code == 302
        batch_id = int(response.location.rstrip("/").rsplit("/", 1)[1])
        read_import.run(batch_id)
    batch = db.session.get(ImportBatch, batch_id)
    assert batch is not None and batch.status == "failed"
    assert batch.error is not None and "NUL" in batch.error
    assert "\n" not in batch.error
    assert logged_data(caplog.records, ["9911278184", "9911278185", "Asha"]) == []


@pytest.mark.parametrize("field", ["sms_text", "optout_text", "help_text"])
def test_a_formatted_placeholder_is_refused_in_the_admin_too(
    admin: FlaskClient, field: str
) -> None:
    """Finding 15 through the admin's campaign form: the same rule as the CLI's."""
    from signup.campaigns.models import Campaign

    csrf = logged_in(admin)
    page = admin.post(
        "/admin/campaigns/a",
        data={
            "action": "settings",
            "name": "Alpha",
            "number": A_NUMBER,
            "optout_number": "+918047259726",
            "language": "en",
            field: "{campaign:>20000} reply STOP {optout_number}",
            "csrf_token": csrf,
        },
        follow_redirects=True,
    )
    assert "may not carry a format" in page.get_data(as_text=True)
    alpha = db.session.scalar(select(Campaign).where(Campaign.slug == "a"))
    assert alpha is not None and getattr(alpha, field) is None
