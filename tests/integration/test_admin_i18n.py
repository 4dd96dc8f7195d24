"""The admin in the account's language, with its navigation on every page, errors included."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from signup.admin.models import ImportBatch
from signup.extensions import db
from signup.users.models import User
from tests.integration.admin_helpers import ALICE, as_user, new_request_globals, token

HINDI = {"Accept-Language": "hi-IN,hi;q=0.9,en;q=0.5"}
ENGLISH = {"Accept-Language": "en-GB,en;q=0.8"}
# Every navigation link an unscoped admin sees, in each language.
NAV = {
    "en": ["Dashboard", "Volunteers", "Import", "Campaigns", "Users", "Audit log", "Log out"],
    "hi": ["डैशबोर्ड", "स्वयंसेवक", "आयात", "अभियान", "उपयोगकर्ता", "गतिविधि लॉग", "लॉग आउट"],
}
NOT_PAGES = {"admin.static", "admin.export", "admin.logout", "admin_pages.language"}


class Fresh:
    """A test client whose every request starts with an empty `g`, as a real request does
    (the test's app context would otherwise keep the last request's language)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, *args: Any, **kwargs: Any) -> Any:
        new_request_globals()
        return self.client.get(*args, **kwargs)

    def post(self, *args: Any, **kwargs: Any) -> Any:
        new_request_globals()
        return self.client.post(*args, **kwargs)


def _set_language(email: str, language: str | None) -> None:
    account = db.session.query(User).filter_by(email=email).one()
    account.language = language
    db.session.commit()


def _every_admin_page(app: Flask, world: dict[str, Any]) -> list[str]:
    """A URL for every GET route of the admin: a new page is covered without editing this."""
    batch = ImportBatch(
        user_id=db.session.query(User).filter_by(email="admin@x.org").one().id,
        filename="list.csv",
        rows="[]",
    )
    db.session.add(batch)
    db.session.commit()
    values = {"volunteer_id": world["ids"][ALICE], "slug": "a", "batch_id": batch.id}
    urls = []
    rule: Rule
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or "GET" not in (rule.methods or ()):
            continue
        if rule.endpoint in NOT_PAGES:
            continue
        missing = set(rule.arguments) - set(values)
        assert not missing, f"{rule.rule}: add a value for {missing} to this test"
        urls.append(rule.build({k: values[k] for k in rule.arguments})[1])
    assert len(urls) >= 10
    return urls


def _nav_words(html: str) -> list[str]:
    nav = re.search(r"<nav>(.*?)</nav>", html, re.S)
    return [] if nav is None else re.findall(r">([^<>]+?)</(?:a|button)>", nav.group(1))


@pytest.mark.parametrize("language", ["en", "hi"])
def test_every_admin_page_has_the_navigation_in_the_accounts_language(
    app: Flask, client: FlaskClient, world: dict[str, Any], language: str
) -> None:
    _set_language("admin@x.org", language)
    client = Fresh(as_user(client, "admin@x.org"))  # type: ignore[assignment]
    other = ENGLISH if language == "hi" else HINDI  # the account's choice beats the browser's
    for url in _every_admin_page(app, world):
        response = client.get(url, headers=other)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, (url, response.status_code)
        assert f'<html lang="{language}">' in html, url
        shown = _nav_words(html)
        assert all(word in shown for word in NAV[language]), (url, shown)


def test_without_a_choice_the_browser_language_is_used(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    client = Fresh(client)  # type: ignore[assignment]
    for headers, language in ((HINDI, "hi"), (ENGLISH, "en"), ({}, "en")):
        page = client.get("/admin/login", headers=headers).get_data(as_text=True)
        assert f'<html lang="{language}">' in page
    assert "पासवर्ड" in client.get("/admin/login", headers=HINDI).get_data(as_text=True)
    as_user(client.client, "org@x.org")  # type: ignore[attr-defined]
    assert '<html lang="hi">' in client.get("/admin/", headers=HINDI).get_data(as_text=True)


def test_the_language_switch_stores_the_choice_and_returns_to_the_page(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    csrf = token(as_user(client, "org@x.org"), "/admin/volunteers")
    client = Fresh(client)  # type: ignore[assignment]
    page = "http://localhost/admin/volunteers?status=active"
    switched = client.post(
        "/admin/language", data={"language": "hi", "csrf_token": csrf}, headers={"Referer": page}
    )
    assert switched.status_code == 302 and switched.location.endswith(
        "/admin/volunteers?status=active"
    )
    assert db.session.query(User).filter_by(email="org@x.org").one().language == "hi"
    assert '<html lang="hi">' in client.get("/admin/", headers=ENGLISH).get_data(as_text=True)
    elsewhere = client.post(
        "/admin/language",
        data={"language": "", "csrf_token": csrf},
        headers={"Referer": "https://evil.example/admin/x"},
    )
    assert elsewhere.location.endswith("/admin/")  # only ever back into this admin
    assert db.session.query(User).filter_by(email="org@x.org").one().language is None
    refused = client.post("/admin/language", data={"language": "xx", "csrf_token": csrf})
    assert refused.status_code == 400


def test_admin_errors_are_pages_of_the_admin_in_its_language(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    _set_language("view@x.org", "hi")
    client = Fresh(as_user(client, "view@x.org"))  # type: ignore[assignment]
    vid = world["ids"][ALICE]
    cases = [
        (client.get("/admin/no-such-page"), 404, "नहीं मिला"),
        (client.get("/admin/volunteers/999999999"), 404, "नहीं मिला"),
        (client.get("/admin/users"), 403, "अनुमति नहीं"),
        (client.get(f"/admin/volunteers/{vid}/erase"), 403, "अनुमति नहीं"),
        (client.post("/admin/language", data={"language": "hi"}), 400, "अनुरोध में कुछ गलत था"),
    ]
    for response, status, title in cases:
        html = response.get_data(as_text=True)
        assert response.status_code == status
        assert '<html lang="hi">' in html and title in html, (status, title)
        assert "डैशबोर्ड" in _nav_words(html) and "लॉग आउट" in _nav_words(html), status


def test_errors_outside_the_admin_keep_their_plain_answers(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    for response in (
        client.get("/no-such-page"),
        client.post("/webhooks/twilio/voice", data={"From": "+919911278181"}),
    ):
        assert response.status_code in (403, 404)
        assert "<nav>" not in response.get_data(as_text=True)


def test_an_anonymous_admin_error_page_offers_the_login(client: FlaskClient) -> None:
    html = client.get("/admin/no-such-page").get_data(as_text=True)
    assert "Not found" in html and 'href="/admin/login"' in html and "<nav>" not in html


def test_the_audit_log_names_accounts_by_email(client: FlaskClient, world: dict[str, Any]) -> None:
    as_user(client, "admin@x.org")
    assert client.get("/admin/volunteers/export.csv").status_code == 200
    viewer = db.session.query(User).filter_by(email="view@x.org").one()
    client.post(
        f"/admin/users/{viewer.id}",
        data={"role": "viewer", "active": "on", "csrf_token": token(client, "/admin/users")},
    )
    rows = re.findall(r"<tr>(.*?)</tr>", client.get("/admin/audit").get_data(as_text=True), re.S)
    who = [re.search(r'data-label="Who">([^<]*)<', row) for row in rows]
    assert [m.group(1) for m in who if m] == ["admin@x.org", "admin@x.org"]
    assert "user=view@x.org" in rows[1] or "user=view@x.org" in rows[2]


def test_the_quiet_hours_field_shows_the_default_that_applies(
    app: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    as_user(client, "admin@x.org")
    saved = app.config["SMS_QUIET_HOURS"]
    app.config["SMS_QUIET_HOURS"] = "22:00-06:00"
    try:
        for url in ("/admin/campaigns", "/admin/campaigns/a"):
            html = client.get(url).get_data(as_text=True)
            assert 'name="quiet_hours" value="" placeholder="22:00-06:00"' in html, url
            assert "(empty: 22:00-06:00)" in html, url
    finally:
        app.config["SMS_QUIET_HOURS"] = saved


def test_a_refusal_is_shown_in_the_accounts_language(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    _set_language("org@x.org", "hi")
    client = Fresh(as_user(client, "org@x.org"))  # type: ignore[assignment]
    vid = world["ids"][ALICE]
    csrf = token(client.client, f"/admin/volunteers/{vid}")  # type: ignore[attr-defined]
    saved = client.post(f"/admin/volunteers/{vid}", data={"pincode": "012345", "csrf_token": csrf})
    assert saved.status_code == 302
    page = client.get(f"/admin/volunteers/{vid}").get_data(as_text=True)
    assert "पिन कोड 6 अंकों का हो और 0 से शुरू न हो" in page


def test_the_dashboards_dates_are_in_the_accounts_language(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    months = re.compile(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b")
    _set_language("admin@x.org", "hi")
    client = Fresh(as_user(client, "admin@x.org"))  # type: ignore[assignment]
    captions = re.findall(
        r"<figcaption>(.*?)</figcaption>", client.get("/admin/").get_data(as_text=True), re.S
    )
    assert len(captions) == 2 and not months.search(" ".join(captions)), captions
    assert "सबसे अधिक" in captions[0]
