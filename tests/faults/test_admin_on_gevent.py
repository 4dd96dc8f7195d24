"""The admin through gunicorn as deployed (gevent): a login, the list, and a CSV export that
streams while webhooks keep being answered in the same processes."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select, text

from signup.calls.models import Call
from signup.extensions import db
from signup.users.services import create_user
from tests.faults.web import ring_all, served
from tests.helpers import DATABASE_URL, REDIS_URL
from tests.integration.admin_helpers import PASSWORD
from tests.integration.factories import NUMBER, campaign

pytestmark = pytest.mark.e2e
VOLUNTEERS = 20_000
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


class Browser:
    """requests with the session cookie sent by hand: it is Secure, and the test speaks http."""

    def __init__(self, base: str) -> None:
        self.base, self.http, self.cookie = base, requests.Session(), ""

    def get(self, path: str, **kw: object) -> requests.Response:
        return self._keep(self.http.get(self.base + path, headers=self._headers(), **kw))  # type: ignore[arg-type]

    def post(self, path: str, data: dict[str, str]) -> requests.Response:
        response = self.http.post(
            self.base + path, data=data, headers=self._headers(), allow_redirects=False
        )
        return self._keep(response)

    def _headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie} if self.cookie else {}

    def _keep(self, response: requests.Response) -> requests.Response:
        found = re.search(r"(session=[^;]+)", response.headers.get("Set-Cookie", ""))
        if found:
            self.cookie = found.group(1)
        return response


def test_login_list_and_export_while_calls_come_in(committed: Flask, tmp_path: Path) -> None:
    campaign()
    create_user(email="admin@x.org", role="admin", password=PASSWORD)
    db.session.execute(
        text(
            "INSERT INTO volunteers (phone, status, call_count, created_at, updated_at) "
            "SELECT '+9198' || lpad(g::text, 8, '0'), 'active', 1, now(), now() "
            "FROM generate_series(1, :n) g"
        ),
        {"n": VOLUNTEERS},
    )
    db.session.commit()
    with served(DATABASE_URL, REDIS_URL, tmp_path) as (base, _log):
        browser = Browser(base)
        token = CSRF.search(browser.get("/admin/login").text)
        assert token
        login = browser.post(
            "/admin/login",
            {"email": "admin@x.org", "password": PASSWORD, "csrf_token": token.group(1)},
        )
        assert login.status_code == 302, login.text[:300]
        assert "+919800000001" in browser.get("/admin/volunteers?sort=oldest").text

        calls = [(f"CA{i:032x}", f"+9199112{i:05d}") for i in range(200)]
        answers: list[tuple[int, float]] = []
        ringing = threading.Thread(target=lambda: answers.extend(ring_all(base, calls, NUMBER)))
        ringing.start()
        export = browser.get("/admin/volunteers/export.csv", stream=True)
        lines = sum(chunk.count(b"\n") for chunk in export.iter_content(65536))
        ringing.join(60)

    assert export.status_code == 200 and lines == VOLUNTEERS + 1
    assert [status for status, _ in answers] == [200] * len(calls)
    db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(Call)) == len(calls)
