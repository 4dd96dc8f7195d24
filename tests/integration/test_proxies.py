"""TRUSTED_PROXIES: forwarded headers count from trusted peers only, for every address rule.

Each address-based rule (login throttle, EXOTEL_ALLOWED_IPS on every Exotel route, METRICS_ALLOW
on the web and on the worker's exporter, the `remote` log field, the https scheme that
signatures and HSTS depend on) is checked twice: behind a trusted proxy it sees the client;
from an untrusted peer a spoofed X-Forwarded-For / X-Forwarded-Proto changes nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from signup import create_app
from signup.config import ConfigError, allowed_networks
from signup.metrics import access, exporter
from signup.proxies import TrustedProxies, client_address
from tests.helpers import base_config, call_params, sign
from tests.integration.admin_helpers import PASSWORD, login

pytestmark = pytest.mark.usefixtures("db_session")

PROXY = "10.0.0.2"  # inside TRUSTED_PROXIES
TRUSTED = "10.0.0.0/30, fd00::1"
STRANGER = "192.0.2.50"  # any other peer: its forwarded headers are lies until proven not
CLIENT = "203.0.113.7"  # the real client behind the proxy
OUTSIDER = "198.51.100.9"
EXOTEL_TOKEN = "exotel-webhook-secret-0123456789"
SIGNUP_ROOT = Path(__file__).resolve().parents[2] / "signup"


def via_proxy(client: str, spoofed: str | None = None, proto: str | None = None) -> dict[str, Any]:
    """Request options for a request the trusted proxy forwards for `client`."""
    chain = f"{spoofed}, {client}" if spoofed else client
    headers = {"X-Forwarded-For": chain}
    if proto:
        headers["X-Forwarded-Proto"] = proto
    return {"environ_base": {"REMOTE_ADDR": PROXY}, "headers": headers}


def from_stranger(spoofed: str, proto: str | None = None) -> dict[str, Any]:
    """Request options for an untrusted peer that claims to forward for `spoofed`."""
    headers = {"X-Forwarded-For": spoofed}
    if proto:
        headers["X-Forwarded-Proto"] = proto
    return {"environ_base": {"REMOTE_ADDR": STRANGER}, "headers": headers}


NOT_ADDRESSES = ["garbage-2", "unknown", "example.org", "1.2.3", "300.1.1.1", "[::1]", "_hidden"]


@pytest.fixture
def behind_proxy(app: Flask) -> Iterator[Flask]:
    """The session app with TRUSTED_PROXIES set, installed as create_app installs it."""
    installed = app.wsgi_app
    assert isinstance(installed, TrustedProxies)  # outermost, before the fast path
    networks = allowed_networks(TRUSTED)
    app.config["TRUSTED_PROXY_NETWORKS"] = networks
    app.wsgi_app = TrustedProxies(installed._next, networks)  # type: ignore[method-assign]
    yield app
    app.wsgi_app = installed  # type: ignore[method-assign]
    app.config["TRUSTED_PROXY_NETWORKS"] = []


# --- the rule itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        (PROXY, CLIENT, CLIENT),
        (PROXY, f"1.2.3.4, {CLIENT}", CLIENT),  # the client's own claim is not believed
        (PROXY, f"1.2.3.4, {CLIENT}, 10.0.0.1", CLIENT),  # two proxies of ours
        (PROXY, "10.0.0.1", "10.0.0.1"),  # only proxies: the farthest one
        (PROXY, None, PROXY),
        (PROXY, f" {CLIENT} ,, ", CLIENT),
        ("fd00::1", "2001:db8::5", "2001:db8::5"),
        # Not an IP address: never the client; the proxy (or the hop it names) answers.
        *((PROXY, junk, PROXY) for junk in NOT_ADDRESSES),
        *((PROXY, f"{CLIENT}, {junk}", PROXY) for junk in NOT_ADDRESSES),
        *((PROXY, f"{junk}, {CLIENT}", CLIENT) for junk in NOT_ADDRESSES),
        *((PROXY, f"{junk}, 10.0.0.1", "10.0.0.1") for junk in NOT_ADDRESSES),
    ],
)
def test_the_client_is_the_rightmost_untrusted_address(
    peer: str, forwarded: str | None, expected: str
) -> None:
    assert client_address(peer, forwarded, allowed_networks(TRUSTED)) == expected


def test_create_app_installs_the_proxies_outermost_and_refuses_bad_ones() -> None:
    app = create_app(base_config(TRUSTED_PROXIES="10.0.0.0/30, 192.0.2.1"))
    assert isinstance(app.wsgi_app, TrustedProxies)
    assert app.config["TRUSTED_PROXY_NETWORKS"] == [
        ipaddress.ip_network("10.0.0.0/30"),
        ipaddress.ip_network("192.0.2.1/32"),
    ]
    assert create_app(base_config()).config["TRUSTED_PROXY_NETWORKS"] == []  # none by default
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        create_app(base_config(TRUSTED_PROXIES="10.0.0.0/33"))


def test_nothing_else_reads_forwarded_headers() -> None:
    """The client's address and scheme come from REMOTE_ADDR and wsgi.url_scheme, which only
    signup.proxies rewrites: no other module may read the forwarded headers itself."""
    pattern = re.compile(r"x[-_]forwarded|access_route|ProxyFix|HTTP_FORWARDED", re.IGNORECASE)
    readers = [
        path.relative_to(SIGNUP_ROOT).as_posix()
        for path in SIGNUP_ROOT.rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert sorted(readers) == ["proxies.py"]


# --- login throttle ----------------------------------------------------------------------------


def test_an_attacker_behind_the_proxy_locks_out_only_themselves(
    behind_proxy: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    assert behind_proxy.config["ADMIN_LOGIN_ADDRESS_LIMIT"].startswith("20/minute")
    for _ in range(20):  # random e-mails: only the address throttle counts them
        login(client, f"{uuid.uuid4().hex}@x.org", "wrong", **via_proxy(OUTSIDER))
    assert login(client, "nobody@x.org", "wrong", **via_proxy(OUTSIDER)).status_code == 429
    # The real admin, behind the same proxy, is not the attacker.
    assert login(client, "admin@x.org", PASSWORD, **via_proxy(CLIENT)).status_code == 302


def test_a_spoofed_forwarded_for_does_not_escape_the_throttle(
    behind_proxy: Flask, client: FlaskClient, world: dict[str, Any]
) -> None:
    for i in range(20):
        login(client, f"{uuid.uuid4().hex}@x.org", "wrong", **from_stranger(f"198.51.100.{i}"))
    assert login(client, "x@x.org", "wrong", **from_stranger(CLIENT)).status_code == 429


def test_failed_logins_log_the_client(
    behind_proxy: Flask,
    client: FlaskClient,
    world: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        login(client, "admin@x.org", "wrong", **via_proxy(CLIENT, spoofed="1.2.3.4"))
        login(client, "admin@x.org", "wrong", **from_stranger(CLIENT))
    remotes = [r.remote for r in caplog.records if r.getMessage() == "admin.login_failed"]
    assert remotes == [CLIENT, STRANGER]


# --- EXOTEL_ALLOWED_IPS, on every Exotel route (the fast path's and Flask's) -------------------

EXOTEL_ROUTES = [
    ("GET", "call", {"CallSid": "b6cfa7bb0b3a1e4d1d2b3c4d5e6f7a8b", "CallTo": "08047259725"}),
    ("GET", "sms", {"SmsSid": "s1", "From": "09911278181", "Body": "HELP"}),
    ("POST", "sms-status", {"SmsSid": "s1", "Status": "sent"}),
]


@pytest.mark.parametrize(("method", "route", "fields"), EXOTEL_ROUTES)
def test_exotel_allowlist_sees_the_client(
    behind_proxy: Flask,
    client: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    route: str,
    fields: dict[str, str],
) -> None:
    allowed = allowed_networks("203.0.113.0/24")
    behind_proxy.config.update(EXOTEL_WEBHOOK_TOKEN=EXOTEL_TOKEN, EXOTEL_ALLOWED_NETWORKS=allowed)
    try:

        def send(options: dict[str, Any]) -> int:
            data = {"query_string": fields} if method == "GET" else {"data": fields}
            path = f"/webhooks/exotel/{EXOTEL_TOKEN}/{route}"
            return client.open(path, method=method, **data, **options).status_code

        with caplog.at_level(logging.WARNING):
            assert send(via_proxy(CLIENT, spoofed=OUTSIDER)) != 403
            assert send(via_proxy(OUTSIDER, spoofed=CLIENT)) == 403
            assert send(from_stranger(CLIENT)) == 403
        forbidden = [r for r in caplog.records if r.getMessage() == "webhook.forbidden"]
        assert {r.remote for r in forbidden} <= {OUTSIDER, STRANGER}
    finally:
        behind_proxy.config.update(EXOTEL_WEBHOOK_TOKEN=None, EXOTEL_ALLOWED_NETWORKS=[])


# --- METRICS_ALLOW: the web's /metrics and the worker's exporter -------------------------------


def test_web_metrics_allowlist_sees_the_client(
    behind_proxy: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = access.policy({"SIGNUP_ENV": "production", "METRICS_ALLOW": "203.0.113.0/24"})
    monkeypatch.setitem(behind_proxy.extensions, "metrics_policy", rule)
    assert client.get("/metrics", **via_proxy(CLIENT, spoofed=OUTSIDER)).status_code == 200
    assert client.get("/metrics", **via_proxy(OUTSIDER, spoofed=CLIENT)).status_code == 403
    assert client.get("/metrics", **from_stranger(CLIENT)).status_code == 403


def test_worker_exporter_allowlist_sees_the_client() -> None:
    rule = access.policy({"SIGNUP_ENV": "production", "METRICS_ALLOW": "203.0.113.0/24"})
    trusted = exporter.start(0, rule, host="127.0.0.1", proxies=allowed_networks("127.0.0.1"))
    untrusted = exporter.start(0, rule, host="127.0.0.1")  # no TRUSTED_PROXIES
    try:

        def scrape(server: Any, forwarded_for: str) -> int:
            url = f"http://127.0.0.1:{server.server_port}/metrics"
            headers = {"X-Forwarded-For": forwarded_for}
            return requests.get(url, headers=headers, timeout=10).status_code

        assert scrape(trusted, CLIENT) == 200
        assert scrape(trusted, OUTSIDER) == 403
        assert scrape(untrusted, CLIENT) == 403  # 127.0.0.1 is a stranger here
    finally:
        for server in (trusted, untrusted):
            server.shutdown()
            server.server_close()


# --- the scheme: signature URLs (fast path and Flask) and HSTS ---------------------------------

VOICE = "/webhooks/twilio/voice"
STATUS = "/webhooks/twilio/message-status"


@pytest.mark.parametrize("path", [VOICE, STATUS])
def test_signatures_are_checked_against_the_scheme_the_proxy_saw(
    behind_proxy: Flask, client: FlaskClient, path: str
) -> None:
    """Without PUBLIC_BASE_URL the signed URL is the request's: https only when the proxy
    says so, never when a stranger does."""
    behind_proxy.config["PUBLIC_BASE_URL"] = None
    fast_path = behind_proxy.wsgi_app._next  # type: ignore[attr-defined]
    fast_path._public = None
    try:
        if path == VOICE:
            params = call_params("CA" + uuid.uuid4().hex, "+919911278181", "+918047259799")
        else:
            params = {"MessageSid": "SM" + uuid.uuid4().hex, "MessageStatus": "sent"}
        signature = {"X-Twilio-Signature": sign(path, params, base="https://localhost")}

        def post(options: dict[str, Any]) -> int:
            options["headers"].update(signature)
            return client.post(path, data=params, **options).status_code

        assert post(via_proxy(CLIENT, proto="https")) in (200, 204)
        assert post(from_stranger(CLIENT, proto="https")) == 403
        assert post(via_proxy(CLIENT, proto="http")) == 403
    finally:
        behind_proxy.config["PUBLIC_BASE_URL"] = base_config()["PUBLIC_BASE_URL"]
        fast_path._public = base_config()["PUBLIC_BASE_URL"]


def test_hsts_follows_the_trusted_scheme_only(behind_proxy: Flask, client: FlaskClient) -> None:
    behind_proxy.config["PUBLIC_BASE_URL"] = None
    try:
        secure = client.get("/healthz", **via_proxy(CLIENT, proto="https"))
        spoofed = client.get("/healthz", **from_stranger(CLIENT, proto="https"))
    finally:
        behind_proxy.config["PUBLIC_BASE_URL"] = base_config()["PUBLIC_BASE_URL"]
    assert "Strict-Transport-Security" in secure.headers
    assert "Strict-Transport-Security" not in spoofed.headers
