"""Helpers shared by the admin tests: constants, CSRF tokens and logging in."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

PASSWORD = "correct horse battery"
A_NUMBER, B_NUMBER = "+918047259725", "+918047250000"
ALICE, BOB, CHITRA = "+919911278181", "+919911278182", "+919911278183"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def token(client: FlaskClient, path: str = "/admin/login") -> str:
    found = CSRF_RE.search(client.get(path).get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def login(client: FlaskClient, email: str, password: str = PASSWORD, **kw: Any) -> Any:
    new_request_globals()  # a new client's token, not one cached by another client's page
    return client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": token(client)},
        **kw,
    )


def as_user(client: FlaskClient, email: str) -> FlaskClient:
    response = login(client, email)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def new_request_globals() -> None:
    """Forget what the last request left on `g` (login, CSRF, access, language).

    A test's app context outlives its requests, so `g` would carry one client's session
    into another's request; a real request always starts with an empty `g`.
    """
    from flask import g, has_app_context

    if not has_app_context():  # each request then has its own context, and its own `g`
        return
    for name in ("csrf_token", "_login_user", "access", "_flask_babel"):
        g.pop(name, None)
