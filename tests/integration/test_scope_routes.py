"""Every admin route, as every role and scope: nothing beyond the scope is shown or changed.

The routes come from the app's URL map, so a new route fails here until it has a case. Each
account (admin, organiser, viewer; unscoped, campaign A, state Bihar, both) GETs every page
(HTML and CSV) and the body must hold no marker of what its scope excludes: campaign B's slug,
name, numbers and blackout, B-only volunteers' numbers in every format (SMS bodies name the
campaign), or the other state's name and people. Every POST that reaches beyond the scope (or
the role) must be refused with 403 or 404 and leave every table as it was.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from signup import clock
from signup.admin import imports
from signup.admin.access import Access
from signup.calls import services as calls
from signup.campaigns import services as campaigns
from signup.campaigns.models import Campaign
from signup.extensions import db
from signup.phones import mask
from signup.users import services as users
from signup.users.models import Role, User, UserCampaign, UserState
from signup.volunteers.models import Subscription, Volunteer
from tests.integration.admin_helpers import (
    CSRF_RE,
    PASSWORD,
    as_user,
    new_request_globals,
    token,
)
from tests.integration.factories import campaign, inbound

pytestmark = pytest.mark.usefixtures("db_session", "fresh_limits")

A_NUMBER, A_OPTOUT = "+918047259725", "+918047259726"
B_NUMBER, B_OPTOUT = "+918047250000", "+918047250001"
ASHA, BALU, CHITRA, DEV, ESHA, FARID = (f"+91991127000{i}" for i in range(1, 7))
PEOPLE = {  # phone: (campaigns called, state)
    ASHA: ("a", "Bihar"),
    BALU: ("b", "Kerala"),
    CHITRA: ("ab", "Bihar"),
    DEV: ("a", "Kerala"),
    ESHA: ("b", "Bihar"),
    FARID: ("ab", "Bihar"),
}
ROLES = ("admin", "organiser", "viewer")
SCOPES = ("none", "campaign", "state", "both")
B_BLACKOUT = "Betablackout reason"
UNROUTED = "+918047259999"  # a number of no campaign: calls to it are in no scope


def number_formats(e164: str) -> list[str]:
    """Every way a page or file could show an Indian number."""
    local = e164[3:]
    return [e164, e164[1:], local, f"{local[:5]} {local[5:]}", mask(e164)]


def markers(scope: str) -> list[str]:
    """What an account of this scope must never be shown."""
    beyond_campaign = ["beta-zone", "Betaname", B_BLACKOUT]
    beyond_campaign += number_formats(B_NUMBER) + number_formats(B_OPTOUT)
    beyond_campaign += number_formats(BALU) + number_formats(ESHA)
    beyond_state = ["Kerala", *number_formats(BALU), *number_formats(DEV)]
    unrouted = number_formats(UNROUTED)
    return {
        "none": [],
        "campaign": beyond_campaign + unrouted,
        "state": beyond_state + unrouted,
        "both": beyond_campaign + beyond_state + unrouted,
    }[scope]


@dataclass
class Town:
    """Two campaigns, five people, an account per role and scope, and another's import."""

    ids: dict[str, int]
    accounts: dict[tuple[str, str], int] = field(default_factory=dict)
    batch_id: int = 0


@pytest.fixture
def town(fresh_limits: None) -> Town:
    a = campaign("alpha-camp", A_NUMBER, A_OPTOUT, name="Alphaname Abhiyan")
    b = campaign("beta-zone", B_NUMBER, B_OPTOUT, name="Betaname Seva")
    numbers = {"a": A_NUMBER, "b": B_NUMBER}
    for phone, (called, state) in PEOPLE.items():
        for letter in called:
            calls.process_call(inbound(phone, numbers[letter]).id)
        db.session.query(Volunteer).filter_by(phone=phone).update({"state": state})
    calls.process_call(inbound(CHITRA, B_OPTOUT).id)  # B's withdrawal and its SMS
    calls.process_call(inbound(ASHA, UNROUTED).id)
    now = clock.now()
    campaigns.add_blackout(
        b, starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=2), reason=B_BLACKOUT
    )
    ids = {phone: v.id for phone, v in _volunteers().items()}
    world = Town(ids)
    for role in ROLES:
        for scope in SCOPES:
            user = users.create_user(email=f"{role}-{scope}@x.org", role=role, password=PASSWORD)
            if scope in ("campaign", "both"):
                db.session.add(UserCampaign(user_id=user.id, campaign_id=a.id))
            if scope in ("state", "both"):
                db.session.add(UserState(user_id=user.id, state="Bihar"))
            world.accounts[role, scope] = user.id
    other = users.create_user(email="other@x.org", role="organiser", password=PASSWORD)
    batch = imports.upload(Access(other.id, Role.ORGANISER), "list.csv", b"phone\n9911270009\n")
    world.batch_id = batch.id
    db.session.commit()
    return world


def _volunteers() -> dict[str, Volunteer]:
    return {v.phone: v for v in db.session.scalars(select(Volunteer))}


# --- the cases: every admin endpoint has its GETs, and its POSTs beyond some scope ------------

Forbidden = Callable[[str, str], bool]  # (role, scope) -> this POST must be refused


def _unless_full_admin(role: str, scope: str) -> bool:
    return not (role == "admin" and scope == "none")


def _unless_editor_sees(*states: str, campaigns_of: str) -> Forbidden:
    """Refused for viewers and for scopes that exclude a person of these campaigns and state."""

    def forbidden(role: str, scope: str) -> bool:
        beyond_campaign = scope in ("campaign", "both") and "a" not in campaigns_of
        beyond_state = scope in ("state", "both") and "Bihar" not in states
        return role == "viewer" or beyond_campaign or beyond_state

    return forbidden


def gets(town: Town) -> dict[str, list[str]]:
    """The pages each endpoint shows, for every person and campaign (in scope or not)."""
    people = list(town.ids.values())
    return {
        "admin.login": ["/admin/login"],
        "admin.logout": [],
        "admin.index": ["/admin/"],
        "admin.volunteers": [
            "/admin/volunteers",
            "/admin/volunteers?sort=last_call",
            "/admin/volunteers?status=opted_out",
            "/admin/volunteers?campaign=alpha-camp",
        ],
        "admin.volunteer": [f"/admin/volunteers/{i}" for i in people],
        "admin.opt_out": [f"/admin/volunteers/{i}/opt-out" for i in people],
        "admin.erase": [f"/admin/volunteers/{i}/erase" for i in people],
        "admin.export": [
            "/admin/volunteers/export.csv",
            "/admin/volunteers/export.csv?status=active",
            "/admin/volunteers/export.csv?campaign=alpha-camp",
        ],
        "admin.audit": ["/admin/audit"],
        "admin.import_upload": ["/admin/import"],
        "admin.import_preview": [f"/admin/import/{town.batch_id}"],
        "admin.users": ["/admin/users"],
        "admin.user_update": [],
        "admin.campaigns_page": ["/admin/campaigns"],
        "admin.campaign_page": ["/admin/campaigns/alpha-camp", "/admin/campaigns/beta-zone"],
        "admin.static": ["/admin/static/admin.css"],
    }


def posts(town: Town, own_id: int) -> dict[str, list[tuple[str, dict[str, Any], Forbidden]]]:
    """For each endpoint that takes a POST: requests that reach beyond some role or scope."""
    balu, esha, dev = town.ids[BALU], town.ids[ESHA], town.ids[DEV]
    edit = {"name": "Changed", "notes": "changed"}
    confirm: dict[str, Any] = {}
    other_scoped = town.accounts["viewer", "campaign"]
    widen = {"role": "admin", "active": "on", "states": ""}
    beta = "/admin/campaigns/beta-zone"
    return {
        "admin.login": [],  # no data changes: tests/integration/test_admin.py
        "admin.logout": [],  # ends sessions: tests/integration/test_sessions.py
        "admin.volunteer": [
            (f"/admin/volunteers/{balu}", edit, _unless_editor_sees("Kerala", campaigns_of="b")),
            (f"/admin/volunteers/{esha}", edit, _unless_editor_sees("Bihar", campaigns_of="b")),
            (f"/admin/volunteers/{dev}", edit, _unless_editor_sees("Kerala", campaigns_of="a")),
        ],
        "admin.opt_out": [(f"/admin/volunteers/{balu}/opt-out", confirm, _unless_full_admin)],
        "admin.erase": [
            (f"/admin/volunteers/{balu}/erase", confirm, _unless_full_admin),
            (  # in A and B: erasing would reach B
                f"/admin/volunteers/{town.ids[CHITRA]}/erase",
                confirm,
                lambda role, scope: role != "admin" or scope in ("campaign", "both"),
            ),
        ],
        "admin.import_upload": [
            (
                "/admin/import",
                {"file": (io.BytesIO(b"phone\n9911270010\n"), "list.csv")},
                lambda role, scope: role == "viewer" or scope != "none",
            )
        ],
        "admin.import_preview": [(f"/admin/import/{town.batch_id}", confirm, lambda *_: True)],
        "admin.users": [
            (
                "/admin/users",
                {"email": "new@x.org", "password": "a long enough password", **widen},
                _unless_full_admin,
            )
        ],
        "admin.user_update": [
            (f"/admin/users/{own_id}", widen, _unless_full_admin),
            (f"/admin/users/{other_scoped}", widen, _unless_full_admin),
        ],
        "admin.campaigns_page": [
            (
                "/admin/campaigns",
                {"slug": "gamma", "name": "Gamma", "number": "+918047251111"},
                _unless_full_admin,
            )
        ],
        "admin.campaign_page": [
            (
                beta,
                {"action": "settings", "name": "Renamed", "number": B_NUMBER},
                _unless_full_admin,
            ),
            (
                beta,
                {"action": "dlt", "entity_id": "1101234567890", "header": "BETAZN"},
                _unless_full_admin,
            ),
            (
                beta,
                {
                    "action": "blackout",
                    "starts_at": "2030-01-01T10:00",
                    "ends_at": "2030-01-02T10:00",
                },
                _unless_full_admin,
            ),
            (
                beta,
                {"action": "template", "kind": "help", "template_id": "1", "text": "x"},
                _unless_full_admin,
            ),
            (
                "/admin/campaigns/alpha-camp",
                {"action": "settings", "name": "Renamed", "number": A_NUMBER},
                lambda role, scope: role != "admin" or scope in ("state", "both"),
            ),
        ],
    }


def admin_endpoints(app: Flask) -> dict[str, set[str]]:
    """Every admin endpoint and its methods, from the URL map."""
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin."):
            found.setdefault(rule.endpoint, set()).update(rule.methods or ())
    return found


def test_every_admin_route_has_a_case(app: Flask, town: Town) -> None:
    endpoints = admin_endpoints(app)
    assert set(gets(town)) == set(endpoints), "a route without GET cases"
    takes_post = {name for name, methods in endpoints.items() if "POST" in methods}
    assert set(posts(town, 0)) == takes_post, "a route that takes POST without POST cases"


# --- the walk ----------------------------------------------------------------------------------


def fingerprint() -> dict[str, str]:
    """A digest of every table's rows: a refused request must leave each one as it was."""
    return {
        table.name: hashlib.sha256(
            repr(sorted(repr(tuple(row)) for row in db.session.execute(table.select()))).encode()
        ).hexdigest()
        for table in db.metadata.sorted_tables
    }


def shown(response: Any) -> str:
    return response.get_data(as_text=True) + response.headers.get("Location", "")


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("role", ROLES)
def test_every_route_as_every_role_and_scope(app: Flask, town: Town, role: str, scope: str) -> None:
    email = f"{role}-{scope}@x.org"
    client = as_user(app.test_client(), email)
    hidden = markers(scope)
    for url in (u for urls in gets(town).values() for u in urls):
        new_request_globals()
        response = client.get(url)
        assert response.status_code in (200, 302, 403, 404), (url, response.status_code)
        body = shown(response)
        leaked = [marker for marker in hidden if marker in body]
        assert not leaked, f"{email} GET {url} shows {leaked}"
    own_id = town.accounts[role, scope]
    for endpoint, cases in posts(town, own_id).items():
        for url, data, forbidden in cases:
            if not forbidden(role, scope):
                continue
            _refused_and_unchanged(client, email, endpoint, url, data)


def _refused_and_unchanged(
    client: FlaskClient, email: str, endpoint: str, url: str, data: dict[str, Any]
) -> None:
    new_request_globals()
    csrf = token(client, "/admin/volunteers")
    before = fingerprint()
    new_request_globals()
    response = client.post(url, data={**data, "csrf_token": csrf})
    assert response.status_code in (403, 404), (email, endpoint, url, response.status_code)
    after = fingerprint()
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"{email} POST {url} was refused but changed {changed}"
    assert not [marker for marker in markers("both") if marker in shown(response)]


def test_a_scoped_admin_cannot_widen_their_own_scope(app: Flask, town: Town) -> None:
    """Finding 7, as reported: the account keeps its one campaign and state."""
    for scope in ("campaign", "state", "both"):
        me = town.accounts["admin", scope]
        client = as_user(app.test_client(), f"admin-{scope}@x.org")
        _refused_and_unchanged(
            client, scope, "admin.user_update", f"/admin/users/{me}", {"role": "admin"}
        )
        account = db.session.get(User, me)
        assert account is not None and account.role == "admin"


def _statuses(volunteer_id: int) -> dict[str, str]:
    return dict(
        db.session.execute(
            select(Campaign.slug, Subscription.status)
            .join(Subscription, Subscription.campaign_id == Campaign.id)
            .where(Subscription.volunteer_id == volunteer_id)
        ).all()
    )


def test_a_scoped_admin_opts_out_of_the_scopes_campaigns_only(app: Flask, town: Town) -> None:
    client = as_user(app.test_client(), "admin-campaign@x.org")
    farid = town.ids[FARID]
    assert _statuses(farid) == {"alpha-camp": "active", "beta-zone": "active"}
    response = client.post(
        f"/admin/volunteers/{farid}/opt-out",
        data={"csrf_token": token(client, "/admin/volunteers")},
    )
    assert response.status_code == 302
    assert _statuses(farid) == {"alpha-camp": "opted_out", "beta-zone": "active"}


def test_a_scoped_admin_erases_someone_wholly_in_scope(app: Flask, town: Town) -> None:
    client = as_user(app.test_client(), "admin-campaign@x.org")
    asha = town.ids[ASHA]
    response = client.post(
        f"/admin/volunteers/{asha}/erase", data={"csrf_token": token(client, "/admin/volunteers")}
    )
    assert response.status_code == 302
    erased = db.session.get(Volunteer, asha)
    assert erased is not None and erased.status == "erased" and erased.phone != ASHA


@pytest.mark.parametrize("path", ["/admin/volunteers", "/admin/volunteers/export.csv"])
def test_a_campaign_beyond_the_scope_is_answered_like_an_unknown_one(
    app: Flask, town: Town, path: str
) -> None:
    client = as_user(app.test_client(), "organiser-campaign@x.org")
    beyond = client.get(f"{path}?campaign=beta-zone")
    new_request_globals()
    unknown = client.get(f"{path}?campaign=zeta-zone")
    assert beyond.status_code == unknown.status_code == 400
    answer = CSRF_RE.sub("", beyond.get_data(as_text=True)).replace("beta-zone", "zeta-zone")
    assert answer == CSRF_RE.sub("", unknown.get_data(as_text=True))
