"""Sessions end on the server: a copied cookie dies with logout and every account change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from signup.extensions import db
from signup.users.models import User
from signup.users.services import check_password
from tests.integration.admin_helpers import as_user, new_request_globals, token

pytestmark = pytest.mark.usefixtures("db_session", "fresh_limits")
VICTIM = "org@x.org"


def _account(email: str) -> User:
    account = db.session.scalar(select(User).where(User.email == email))
    assert account is not None
    return account


def _admin_sets(app: Flask, email: str, **form: Any) -> None:
    """An admin saves the account's form (role, active, campaigns, states) as given."""
    new_request_globals()
    admin = as_user(app.test_client(), "admin@x.org")
    response = admin.post(
        f"/admin/users/{_account(email).id}",
        data={**form, "csrf_token": token(admin, "/admin/users")},
    )
    assert response.status_code == 302


def _logout(app: Flask, world: dict[str, Any], client: FlaskClient) -> None:
    new_request_globals()
    response = client.post("/admin/logout", data={"csrf_token": token(client, "/admin/")})
    assert response.status_code == 302


def _password_change(app: Flask, world: dict[str, Any], client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(
        args=["user", "set-password", "--email", VICTIM.upper()],
        env={"SIGNUP_PASSWORD": "a brand new passphrase"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "@" in result.output and "passphrase" not in result.output
    db.session.expire_all()
    assert check_password(_account(VICTIM), "a brand new passphrase")


def _role_change(app: Flask, world: dict[str, Any], client: FlaskClient) -> None:
    _admin_sets(app, VICTIM, role="viewer", active="on")


def _campaign_scope_change(app: Flask, world: dict[str, Any], client: FlaskClient) -> None:
    _admin_sets(app, VICTIM, role="organiser", active="on", campaigns=[str(world["a"].id)])


def _state_scope_change(app: Flask, world: dict[str, Any], client: FlaskClient) -> None:
    _admin_sets(app, VICTIM, role="organiser", active="on", states="Bihar")


def _deactivation(app: Flask, world: dict[str, Any], client: FlaskClient) -> None:
    _admin_sets(app, VICTIM, role="organiser")  # active unticked


EVENTS: dict[str, Callable[[Flask, dict[str, Any], FlaskClient], None]] = {
    "logout": _logout,
    "password change": _password_change,
    "role change": _role_change,
    "campaign scope change": _campaign_scope_change,
    "state scope change": _state_scope_change,
    "deactivation": _deactivation,
}


def _copy(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of this client's session cookie."""
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = client.get_cookie(name)
    assert cookie is not None
    copy = app.test_client()
    copy.set_cookie(name, cookie.value)
    return copy


def _signed_in(client: FlaskClient) -> bool:
    new_request_globals()
    response = client.get("/admin/volunteers")
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


@pytest.mark.parametrize("event", EVENTS)
def test_every_session_ending_event_ends_every_copy(
    app: Flask, world: dict[str, Any], event: str
) -> None:
    victim = as_user(app.test_client(), VICTIM)
    copies = [_copy(app, victim)]
    assert _signed_in(victim) and _signed_in(copies[0])
    copies.append(_copy(app, victim))  # a copy of the cookie as renewed by the last request
    EVENTS[event](app, world, victim)
    for holder in (victim, *copies):
        assert not _signed_in(holder), event


def test_other_accounts_changes_leave_a_session_alone(app: Flask, world: dict[str, Any]) -> None:
    victim = as_user(app.test_client(), VICTIM)
    copy = _copy(app, victim)
    _admin_sets(app, "view@x.org", role="organiser", active="on")
    new_request_globals()
    other = as_user(app.test_client(), "admin@x.org")
    _logout(app, world, other)
    _admin_sets(app, VICTIM, role="organiser", active="on")  # saved unchanged
    assert _signed_in(victim) and _signed_in(copy)


def test_a_new_login_works_after_the_event(app: Flask, world: dict[str, Any]) -> None:
    victim = as_user(app.test_client(), VICTIM)
    _logout(app, world, victim)
    new_request_globals()
    again = as_user(app.test_client(), VICTIM)
    assert _signed_in(again)


@pytest.mark.parametrize("value", ["", "abc", "1", "1:", ":0", "1:x", "999999:0"])
def test_a_malformed_or_stale_session_id_is_no_session(app: Flask, value: str) -> None:
    from signup.admin.auth import load_user

    with app.app_context():
        assert load_user(value) is None


@pytest.mark.parametrize(
    ("email", "password", "error"),
    [
        ("nobody@x.org", "a brand new passphrase", "no account with email nobody@x.org"),
        (VICTIM, "short", "password must be at least 12 characters"),
    ],
)
def test_set_password_refuses_bad_input_and_changes_nothing(
    app: Flask, world: dict[str, Any], email: str, password: str, error: str
) -> None:
    before = (_account(VICTIM).password_hash, _account(VICTIM).session_epoch)
    result = app.test_cli_runner().invoke(
        args=["user", "set-password", "--email", email], env={"SIGNUP_PASSWORD": password}
    )
    assert result.exit_code != 0
    assert [line for line in result.stderr.splitlines() if line.strip()] == [f"Error: {error}"]
    db.session.expire_all()
    assert (_account(VICTIM).password_hash, _account(VICTIM).session_epoch) == before
