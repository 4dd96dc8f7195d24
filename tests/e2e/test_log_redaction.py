"""No log line outlives erasure: a whole scenario through gunicorn as the image runs it, and a
Celery worker, then every line searched for every form of every number and every secret.

gunicorn is started with the Dockerfile's own CMD flags (access log on, to stdout) and the
repository's gunicorn.conf.py, in both log formats. The scenario: Exotel's Passthru GETs and
SMS GETs with the caller in the query, signed Twilio calls, admin and viewer searches for numbers
in every common format (and the same URLs as Referer), webhooks that raise with the Exotel token
in their path (fast path and Flask), a failed login and a failed import.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import psycopg
import pytest
import requests
from flask import Flask
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from signup.extensions import db
from signup.users import services as users
from tests.e2e.conftest import ROOT, Worker, wait_for
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, DATABASE_URL, REDIS_URL
from tests.integration.factories import NUMBER, campaign

pytestmark = pytest.mark.e2e

EXOTEL_TOKEN = "exotel-path-token-5f2b9c0e7a1d4e6b"
SECRET_KEY = "session-signing-key-8c1e4a7b2d9f"
ADMIN_PASSWORD = "correct-horse-battery-4711"
VIEWER_PASSWORD = "viewer-pass-phrase-0815"
WRONG_PASSWORD = "wrong-guess-pass-1234"
SECRETS = (EXOTEL_TOKEN, AUTH_TOKEN, SECRET_KEY, ADMIN_PASSWORD, VIEWER_PASSWORD, WRONG_PASSWORD)
CLIENT = "203.0.113.77"  # the address a trusted proxy (127.0.0.1 here) forwards for

# Ten-digit Indian mobiles, one per way a number reaches the logs.
EXOTEL_CALLERS = ["9876501234", "9876502345", "9876503456", "9876504567"]
TWILIO_CALLERS = ["9876505678", "9876506789"]
SMS_SENDERS = ["9876507890"]
SEARCHED = ["9876508901", "9876509012"]
IMPORTED = ["9876510123", "9876511234"]
CRASHING = ["9876512345", "9876513456", "9876514567"]
EVERY_NUMBER = EXOTEL_CALLERS + TWILIO_CALLERS + SMS_SENDERS + SEARCHED + IMPORTED + CRASHING
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")
# The outside review's forms: in paths (percent-encoded, any separator, Devanagari) and headers.
IN_PATHS = {
    "9811100056": "981%2D110%2D0056",
    "9811100057": "".join(f"%{ord(d):02X}" for d in "9811100057"),
    "9811100058": quote("9811100058".translate(DEVANAGARI)),
    "9811100053": "98111_00053",
    "9811100055": "+91%E2%80%8998111%E2%80%8900055",
}
IN_HEADERS = {"9811100054": "9811100054".translate(DEVANAGARI), "9811100059": "98111.00059"}


def forms(ten: str) -> list[str]:
    """Every common way of writing one number, as typed, sent or URL-encoded."""
    head, tail = ten[:5], ten[5:]
    written = [
        f"+91{ten}",
        f"91{ten}",
        f"0{ten}",
        ten,
        f"{head} {tail}",
        f"+91 {head} {tail}",
        f"+91-{head}-{tail}",
        f"0{head} {tail}",
    ]
    encoded = {quote(f, safe="") for f in written} | {f.replace(" ", "+") for f in written}
    return sorted(set(written) | encoded, key=len, reverse=True)


def typed(ten: str, i: int) -> str:
    """The number in the i-th common format (spaced, prefixed, bare...)."""
    return forms(ten)[i % len(forms(ten))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def image_command() -> list[str]:
    """The Dockerfile's CMD: gunicorn's flags exactly as the image ships them."""
    text = (ROOT / "Dockerfile").read_text()
    found = re.search(r"^CMD (\[.*?\])\s*$", text.replace("\\\n", ""), re.MULTILINE | re.DOTALL)
    assert found, "the Dockerfile has no exec-form CMD"
    command: list[str] = json.loads(found.group(1))
    assert command[0] == "gunicorn" and "--access-logfile=-" in command
    return command


@pytest.fixture(params=["json", "text"])
def web(committed: Flask, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """gunicorn with the image's command on a free port; yields (base URL, its log file)."""
    port = free_port()
    command = [
        f"--bind=127.0.0.1:{port}" if arg.startswith("--bind=") else arg for arg in image_command()
    ]
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "SIGNUP_ENV": "production",
        "SECRET_KEY": SECRET_KEY,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "EXOTEL_WEBHOOK_TOKEN": EXOTEL_TOKEN,
        "TRUSTED_PROXIES": "127.0.0.1",
        "SIGNUP_INSTANCE_PATH": str(tmp_path / "web"),
        "LOG_FORMAT": request.param,
        "WEBHOOK_AUTOCOMMIT": "on",
    }
    log = tmp_path / "gunicorn.log"
    process = subprocess.Popen(
        [sys.executable, "-m", *command],
        cwd=ROOT,  # where gunicorn.conf.py is read from, as in the image (/app)
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 60, "gunicorn")
        yield f"http://127.0.0.1:{port}", log, request.param
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=40)


class Browser:
    """An admin's browser: cookies kept by hand (they are Secure; the test speaks http)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.referer: str | None = None

    def open(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"X-Forwarded-For": CLIENT, **kw.pop("headers", {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.referer:
            headers["Referer"] = self.referer
        response = requests.request(
            method, self.base + path, headers=headers, allow_redirects=False, timeout=30, **kw
        )
        for cookie in response.cookies:
            self.cookies[cookie.name] = cookie.value or ""
        self.referer = response.url  # the next request's Referer carries this query too
        return response

    def csrf(self, path: str) -> str:
        found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', self.open("GET", path).text)
        assert found, path
        return found.group(1)

    def login(self, email: str, password: str) -> int:
        token = self.csrf("/admin/login")
        data = {"email": email, "password": password, "csrf_token": token}
        return self.open("POST", "/admin/login", data=data).status_code


@contextlib.contextmanager
def tables_away(*tables: str) -> Iterator[None]:
    """Rename tables for a moment, so that the requests writing them fail in PostgreSQL."""
    url = make_url(DATABASE_URL).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_away"')
        try:
            yield
        finally:
            for table in tables:
                conn.execute(f'ALTER TABLE "{table}_away" RENAME TO "{table}"')


def scenario(base: str) -> None:
    """Every way a number or a secret could reach a log line."""
    exotel = f"{base}/webhooks/exotel/{EXOTEL_TOKEN}"
    for i, caller in enumerate(EXOTEL_CALLERS):  # Passthru: a GET, the caller in the query
        query = {"CallSid": uuid.uuid4().hex, "CallFrom": typed(caller, i), "CallTo": NUMBER}
        assert requests.get(f"{exotel}/call", params=query, timeout=30).status_code == 200
    for i, sender in enumerate(SMS_SENDERS):  # an inbound SMS, also a GET
        query = {"SmsSid": uuid.uuid4().hex, "From": typed(sender, i), "Body": "HELP"}
        requests.get(f"{exotel}/sms", params=query, timeout=30)
    validator = RequestValidator(AUTH_TOKEN)
    for caller in TWILIO_CALLERS:
        params = {
            "AccountSid": ACCOUNT_SID,
            "CallSid": "CA" + uuid.uuid4().hex,
            "From": f"+91{caller}",
            "To": NUMBER,
            "CallStatus": "ringing",
        }
        url = f"{base}/webhooks/twilio/voice"
        signature = validator.compute_signature(url, params)
        headers = {"X-Twilio-Signature": signature}
        answer = requests.post(url, data=params, headers=headers, timeout=30)
        assert answer.status_code == 200

    # Webhooks that raise, with the token in the path and a number in the request: the tables
    # they write are moved away for a moment, so PostgreSQL refuses them (malformed input is
    # refused before it could raise, so the failure comes from the database).
    crash_call = {"CallSid": uuid.uuid4().hex, "CallFrom": f"0{CRASHING[0]}", "CallTo": NUMBER}
    crash_sms = {"SmsSid": uuid.uuid4().hex, "From": f"+91{CRASHING[1]}", "Body": "STOP"}
    crash_status = {"SmsSid": uuid.uuid4().hex, "Status": "sent", "To": f"91{CRASHING[2]}"}
    with tables_away("inbound_messages", "messages"):
        failed = [
            requests.get(f"{exotel}/call", params=crash_call, timeout=30),
            requests.get(f"{exotel}/sms", params=crash_sms, timeout=30),
            requests.post(f"{exotel}/sms-status", data=crash_status, timeout=30),
        ]
    assert 500 in {r.status_code for r in failed}, [r.status_code for r in failed]

    admin, viewer = Browser(base), Browser(base)
    assert admin.login("admin@x.org", WRONG_PASSWORD) == 200  # failed, logged
    assert admin.login("admin@x.org", ADMIN_PASSWORD) == 302
    assert viewer.login("viewer@x.org", VIEWER_PASSWORD) == 302
    for who in (admin, viewer):  # every format, typed in the search box (the viewer's too)
        for number in SEARCHED + EXOTEL_CALLERS[:1]:
            for written in forms(number):
                plain = written.replace("%2B", "+").replace("%20", " ").replace("+", " ")
                for query in (written, plain):
                    who.open("GET", "/admin/volunteers", params={"q": query})
        admin.open("GET", "/admin/volunteers/export.csv", params={"q": f"+91{SEARCHED[0]}"})

    for path in IN_PATHS.values():
        requests.get(f"{base}/r1/{path}", timeout=30)
    for agent in IN_HEADERS.values():
        requests.get(f"{base}/r1/x", headers={"User-Agent": f"x {agent}".encode()}, timeout=30)
    escaped_token = "".join(f"%{ord(ch):02X}" if ch == "-" else ch for ch in EXOTEL_TOKEN)
    requests.get(f"{base}/elsewhere/{escaped_token}", timeout=30)

    # A failed import: rows that PostgreSQL refuses, and a file that is not UTF-8.
    rows = f"phone,name\n+91{IMPORTED[0]},Asha\x00\n{IMPORTED[1]},Ravi\n".encode()
    for data in (rows, f"phone\n{IMPORTED[0]}\n".encode("utf-16")):
        token = admin.csrf("/admin/import")
        files = {"file": ("list.csv", data, "text/csv")}
        admin.open("POST", "/admin/import", data={"csrf_token": token}, files=files)


def leaks(lines: list[str]) -> list[tuple[str, str]]:
    """(what, line) for every line showing any form of any number, or any secret."""
    needles = [(f"number {n}", form) for n in EVERY_NUMBER for form in forms(n)]
    needles += [("secret", s) for s in SECRETS] + [("secret", quote(s)) for s in SECRETS]
    needles += [("secret", s.replace("-", "%2D")) for s in SECRETS]
    found = [(what, line) for line in lines for what, needle in needles if needle in line]
    return found + [
        (f"number {n}", line)
        for line in lines
        for n in [*IN_PATHS, *IN_HEADERS]
        if n in all_digits(line)
    ]


def all_digits(line: str) -> str:
    """The digits of a line in any script, percent-decoded, with UTF-8 read as Latin-1 undone."""
    plain = unquote(line)
    with contextlib.suppress(UnicodeError):
        plain = plain.encode("latin-1").decode()
    return "".join(str(unicodedata.digit(ch)) for ch in plain if ch.isdigit())


def test_no_log_line_shows_a_number_or_a_secret(
    web: tuple[str, Path], start_worker: Callable[..., Worker]
) -> None:
    base, log, fmt = web
    campaign()
    users.create_user(email="admin@x.org", role="admin", password=ADMIN_PASSWORD)
    users.create_user(email="viewer@x.org", role="viewer", password=VIEWER_PASSWORD)
    db.session.commit()
    worker = start_worker(beat=True, SMS_PROVIDER="console", EXOTEL_WEBHOOK_TOKEN=EXOTEL_TOKEN)

    scenario(base)
    wait_for(lambda: "sms.console" in worker.output(), 60, "the worker's onboarding SMS")

    web_lines = log.read_text(errors="replace").splitlines()
    lines = web_lines + worker.output().splitlines()
    # The scenario did reach the logs: an access line for every search...
    assert sum("/admin/volunteers?q=" in line for line in web_lines) >= 100
    assert leaks(lines) == [], "\n".join(f"{what}: {line}" for what, line in leaks(lines))
    # ...from the client the trusted proxy forwarded for, and the rest of the scenario too.
    assert all(CLIENT in line for line in web_lines if "/admin/volunteers?q=" in line)
    assert any(REFERER_WITH_QUERY.search(line) for line in web_lines)
    assert sum("/webhooks/exotel/[redacted]/call?CallSid=" in line for line in web_lines) >= 5
    assert any("Exception on /webhooks/exotel/[redacted]/" in line for line in web_lines)
    assert any("Traceback" in line for line in web_lines)
    assert any("admin.login_failed" in line for line in web_lines)
    assert not any("[parameters:" in line for line in lines)  # SQLAlchemy hides them
    if fmt == "json":  # nothing bypasses the handler: every worker line is one JSON object
        stray = [line for line in web_lines if not GUNICORN_MASTER.match(line)]
        assert [line for line in stray if not is_json(line)] == []


REFERER_WITH_QUERY = re.compile(r'" \d+ \d+ \\?"http://[^"\\]*\?q=\[redacted\]')
GUNICORN_MASTER = re.compile(r"\[[-0-9: +]+\] \[\d+\] \[[A-Z]+\] ")  # before any request


def is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
