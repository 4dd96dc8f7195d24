"""The WSGI fast path answers genuine webhooks exactly as the Flask views would."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.test import Client
from werkzeug.wrappers import Response as Answered

from signup import create_app, logs
from signup.calls import fastpath, views, webhooks
from signup.calls.models import Call
from signup.calls.providers import PROVIDERS
from signup.extensions import db
from tests.helpers import base_config, call_params, sign

pytestmark = pytest.mark.usefixtures("db_session")
PATH = "/webhooks/twilio/voice"
EXOTEL_TOKEN = "exotel-webhook-secret-0123456789"
ENDPOINTS = {"calls.twilio_voice": "twilio", "calls.exotel_call": "exotel"}


def flask_only(app: Flask) -> Client:
    """A client for the Flask app itself, past the fast path installed on this instance."""
    return Client(lambda environ, start: Flask.wsgi_app(app, environ, start), Answered)


def through_the_front(app: Flask) -> Client:
    """A client for the app as gunicorn calls it: fast path first."""
    return Client(app, Answered)


def signed_post(client: Client, sid: str, **extra: str) -> Answered:
    params = call_params(sid, "+919911278181", "+918047259725", **extra)
    return client.post(PATH, data=params, headers={"X-Twilio-Signature": sign(PATH, params)})


def comparable(response: Answered) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "X-Request-Id")
    return response.status_code, response.data, headers


def recorded(sid: str) -> dict[str, Any]:
    call = db.session.scalars(select(Call).where(Call.provider_call_id == sid)).one()
    skip = {"id", "provider_call_id", "received_at"}
    return {c.key: getattr(call, c.key) for c in Call.__table__.columns if c.key not in skip}


def test_a_genuine_call_gets_the_same_answer_and_row_both_ways(app: Flask) -> None:
    fast = signed_post(through_the_front(app), "CA" + "1" * 32)
    slow = signed_post(flask_only(app), "CA" + "2" * 32)
    assert fast.status_code == 200
    assert comparable(fast) == comparable(slow)
    assert fast.headers["X-Request-Id"] and slow.headers["X-Request-Id"]
    assert recorded("CA" + "1" * 32) == recorded("CA" + "2" * 32)


def test_an_exotel_call_gets_the_same_answer_and_row_both_ways(app: Flask) -> None:
    app.config.update(EXOTEL_WEBHOOK_TOKEN=EXOTEL_TOKEN)
    try:
        answers = []
        for client, sid in ((through_the_front(app), "exo-fast"), (flask_only(app), "exo-slow")):
            query = {"CallSid": sid, "CallFrom": "09911278181", "CallTo": "08047259725"}
            answers.append(client.get(f"/webhooks/exotel/{EXOTEL_TOKEN}/call", query_string=query))
    finally:
        app.config.update(EXOTEL_WEBHOOK_TOKEN=None)
    assert answers[0].status_code == 200
    assert comparable(answers[0]) == comparable(answers[1])
    assert recorded("exo-fast") == recorded("exo-slow")


def test_genuine_calls_never_reach_the_flask_view(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def view_called(*_args: Any) -> Any:
        raise AssertionError("the Flask view ran")

    monkeypatch.setattr(views, "_handle", view_called)
    assert signed_post(through_the_front(app), "CA" + "3" * 32).status_code == 200


def test_a_forged_signature_is_refused_by_the_flask_view(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    params = call_params("CA" + "4" * 32, "+919911278181", "+918047259725")
    with caplog.at_level(logging.WARNING):
        response = through_the_front(app).post(
            PATH, data=params, headers={"X-Twilio-Signature": "forged"}
        )
    assert response.status_code == 403
    assert [r.getMessage() for r in caplog.records].count("webhook.forbidden") == 1
    assert db.session.scalars(select(Call)).all() == []


ODD_REQUESTS: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("json body", lambda: {"json": {"CallSid": "CA1"}}),
    ("no content type", lambda: {"data": b"CallSid=CA1", "content_type": ""}),
    ("oversized form", lambda: {"data": {"Big": "x" * 70_000}}),
    ("invalid UTF-8", lambda: {"data": b"CallSid=CA\xff\xfe", "content_type": fastpath.FORM}),
    ("multipart", lambda: {"data": {"CallSid": "CA1", "f": (io.BytesIO(b"x"), "f.txt")}}),
]


@pytest.mark.parametrize(("name", "request_"), ODD_REQUESTS, ids=[n for n, _ in ODD_REQUESTS])
def test_odd_requests_get_what_flask_gives_them(
    app: Flask, name: str, request_: Callable[[], dict[str, Any]]
) -> None:
    fast = through_the_front(app).post(PATH, **request_())
    slow = flask_only(app).post(PATH, **request_())
    assert comparable(fast) == comparable(slow), name
    assert fast.status_code in (403, 413)


def test_a_body_shorter_than_its_length_goes_to_flask(app: Flask) -> None:
    def truncated(client: Client) -> Answered:
        body = b"CallSid=CA1&From=%2B919911278181"
        return client.open(
            PATH,
            method="POST",
            input_stream=io.BytesIO(body),
            headers={"Content-Type": fastpath.FORM, "Content-Length": str(len(body) + 10)},
        )

    assert comparable(truncated(through_the_front(app))) == comparable(truncated(flask_only(app)))


@pytest.mark.parametrize(
    ("method", "path", "taken"),
    [
        ("POST", PATH, True),
        ("GET", PATH, False),
        ("POST", PATH + "/", False),
        ("GET", "/webhooks/exotel/some-token/call", True),
        ("POST", "/webhooks/exotel/some-token/call", False),
        ("HEAD", "/webhooks/exotel/some-token/call", False),
        ("GET", "/webhooks/exotel//call", False),
        ("GET", "/webhooks/exotel/a/b/call", False),
        ("GET", "/webhooks/exotel/tok%C3%A9n/call", True),
        ("POST", "/webhooks/twilio/status", False),
    ],
)
def test_the_fast_path_routes_agree_with_flask(
    app: Flask, method: str, path: str, taken: bool
) -> None:
    """The fast path takes exactly these; for each, Flask routes to the same provider and token."""
    found = fastpath.match(method, path)
    assert (found is not None) == taken
    if found is not None:
        adapter = app.url_map.bind("signup.example.org")
        endpoint, args = adapter.match(path, method)
        assert (ENDPOINTS[endpoint], args) == found


def test_the_request_id_is_kept_echoed_and_reset(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []
    accept: Callable[..., str] = webhooks.accept

    def spy(*args: Any) -> str:
        seen.append(logs.request_id.get())
        return accept(*args)

    monkeypatch.setattr(webhooks, "accept", spy)
    params = call_params("CA" + "5" * 32, "+919911278181", "+918047259725")
    response = through_the_front(app).post(
        PATH,
        data=params,
        headers={"X-Twilio-Signature": sign(PATH, params), "X-Request-Id": "proxy-42"},
    )
    assert response.headers["X-Request-Id"] == "proxy-42"
    assert seen == ["proxy-42"]
    assert logs.request_id.get() is None


def test_an_unexpected_error_is_logged_and_answered_500(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(base_config(TESTING=False))

    def broken(*_args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(PROVIDERS["twilio"], "parse", broken)
    with caplog.at_level(logging.ERROR):
        response = signed_post(through_the_front(app), "CA" + "6" * 32)
    assert response.status_code == 500
    # The traceback is kept as (redacted) text: signup.logs renders it once, then masks it.
    assert any(
        r.getMessage() == "webhook.error" and "RuntimeError: a bug" in (r.exc_text or "")
        for r in caplog.records
    )


def test_trusted_hosts_apply_as_in_flask(app: Flask) -> None:
    app.config["TRUSTED_HOSTS"] = ["signup.example.org"]
    try:
        params = call_params("CA" + "7" * 32, "+919911278181", "+918047259725")
        headers = {"X-Twilio-Signature": sign(PATH, params), "Host": "evil.example.net"}
        fast = through_the_front(app).post(PATH, data=params, headers=headers)
        slow = flask_only(app).post(PATH, data=params, headers=headers)
        assert fast.status_code == slow.status_code == 400
        headers["Host"] = "signup.example.org"
        assert through_the_front(app).post(PATH, data=params, headers=headers).status_code == 200
    finally:
        app.config["TRUSTED_HOSTS"] = None
