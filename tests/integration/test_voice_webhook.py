"""The Twilio voice webhook: verified, recorded before answering, rejected as busy."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from signup.calls.models import Call, CallState
from signup.extensions import db
from tests.helpers import AUTH_TOKEN, call_params, post_signed, sign

PATH = "/webhooks/twilio/voice"
SID = "CA" + "a" * 32
VECTOR = "x9bzt/DojN6tIWXLkcx4TJI7wzw="  # shared/reference/telephony.md section 9


def calls() -> list[Call]:
    return list(db.session.scalars(select(Call).order_by(Call.id)))


def assert_reject(response: Any) -> None:
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.data)
    assert root.tag == "Response"
    first = root[0]
    assert first.tag == "Reject"
    assert first.attrib == {"reason": "busy"}


def test_signed_call_is_recorded_and_rejected(client: FlaskClient) -> None:
    response = post_signed(client, PATH, call_params(SID, "+91 99112 78181", "+918047259725"))
    assert_reject(response)
    [call] = calls()
    assert (call.provider, call.provider_call_id) == ("twilio", SID)
    assert call.from_raw == "+91 99112 78181"
    assert call.caller == "+919911278181"
    assert call.caller_kind == "mobile"
    assert call.called == "+918047259725"
    assert call.state == CallState.PENDING
    assert call.received_at is not None


def test_reference_signature_vector_validates(app: Flask, db_session: Any) -> None:
    """The vector in shared/reference/telephony.md, computed with twilio 9.13's validator."""
    params = {
        "AccountSid": "AC00000000000000000000000000000001",
        "ApiVersion": "2010-04-01",
        "CallSid": "CA00000000000000000000000000000001",
        "CallStatus": "ringing",
        "Called": "+918047259725",
        "Caller": "+919876543210",
        "Direction": "inbound",
        "From": "+919876543210",
        "FromCountry": "IN",
        "To": "+918047259725",
        "ToCountry": "IN",
    }
    app.config["PUBLIC_BASE_URL"] = "https://example.org"
    try:
        ok = app.test_client().post(PATH, data=params, headers={"X-Twilio-Signature": VECTOR})
        forged = app.test_client().post(
            PATH,
            data={**params, "From": "+919876543211"},
            headers={"X-Twilio-Signature": VECTOR},
        )
    finally:
        app.config["PUBLIC_BASE_URL"] = "https://signup.example.org"
    assert ok.status_code == 200
    assert forged.status_code == 403


def test_without_public_base_url_the_request_url_is_signed(app: Flask, db_session: Any) -> None:
    params = call_params(SID, "+919911278181", "+918047259725")
    app.config["PUBLIC_BASE_URL"] = None
    try:
        response = app.test_client().post(
            PATH + "?campaign=x",
            data=params,
            headers={
                "X-Twilio-Signature": sign(PATH + "?campaign=x", params, base="http://localhost")
            },
        )
    finally:
        app.config["PUBLIC_BASE_URL"] = "https://signup.example.org"
    assert_reject(response)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
        {"X-Twilio-Signature": ""},
    ],
)
def test_missing_or_forged_signature_is_403_and_stores_nothing(
    client: FlaskClient, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        response = client.post(
            PATH, data=call_params(SID, "+919911278181", "+918047259725"), headers=headers
        )
    assert response.status_code == 403
    assert calls() == []
    [record] = [r for r in caplog.records if r.getMessage() == "webhook.forbidden"]
    assert "9911278181" not in caplog.text
    assert record.caller == "+91 99XXX XX181"  # type: ignore[attr-defined]


def test_signature_over_other_params_is_refused(client: FlaskClient) -> None:
    params = call_params(SID, "+919911278181", "+918047259725")
    signature = sign(PATH, params)
    response = client.post(
        PATH, data={**params, "From": "+919911278182"}, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403
    assert calls() == []


def test_signature_with_wrong_token_is_refused(client: FlaskClient) -> None:
    params = call_params(SID, "+919911278181", "+918047259725")
    response = client.post(
        PATH, data=params, headers={"X-Twilio-Signature": sign(PATH, params, token="other")}
    )
    assert response.status_code == 403
    assert AUTH_TOKEN != "other"


def test_repeated_call_sid_answers_the_same_and_stores_nothing_new(client: FlaskClient) -> None:
    params = call_params(SID, "+919911278181", "+918047259725")
    first = post_signed(client, PATH, params)
    second = post_signed(client, PATH, params)
    assert first.data == second.data
    assert_reject(second)
    assert len(calls()) == 1


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        ({"CallSid": SID, "To": "+918047259725"}, "withheld"),  # no From at all
        (call_params(SID, "anonymous", "+918047259725"), "withheld"),
        (call_params(SID, "9" * 10_000, "+918047259725"), "invalid"),  # a 10 kB value
        (call_params(SID, "+919911278181", "+918047259725", Extra="x" * 10_000), "mobile"),
        (call_params(SID, "फ़ोन नंबर", "+918047259725"), "withheld"),  # non-ASCII text
        (call_params(SID, "\x00\x01+91", "+918047259725"), "invalid"),
        (call_params(SID, "९९११२७८१८१", "८०४७२५९७२५"), "mobile"),
    ],
)
def test_odd_fields_still_get_reject_and_are_recorded(
    client: FlaskClient, params: dict[str, str], kind: str
) -> None:
    response = post_signed(client, PATH, params)
    assert_reject(response)
    [call] = calls()
    assert call.caller_kind == kind
    assert len(call.from_raw or "") <= 64


@pytest.mark.parametrize("call_sid", ["", "CA" + "z" * 5000, "CA\u0915\u0916", "CA1"])
def test_missing_or_odd_call_sid_is_400_and_stores_nothing(
    client: FlaskClient, call_sid: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Never a call under an id of our making (test_webhook_ids.py checks every route)."""
    params = call_params(call_sid, "+919911278181", "+918047259725")
    if not call_sid:
        del params["CallSid"]
    with caplog.at_level(logging.WARNING):
        assert post_signed(client, PATH, params).status_code == 400
    assert calls() == []
    assert [r.getMessage() for r in caplog.records] == ["webhook.malformed"]
    assert "9911278181" not in caplog.text


def test_body_over_the_limit_is_413(client: FlaskClient) -> None:
    params = call_params(SID, "+919911278181", "+918047259725", Big="x" * 70_000)
    response = post_signed(client, PATH, params)
    assert response.status_code == 413
    assert calls() == []


def test_get_is_not_allowed(client: FlaskClient) -> None:
    assert client.get(PATH).status_code == 405


def test_database_error_still_answers_reject(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy.exc import OperationalError

    from signup.calls import services

    def broken(_inbound: object, _received_at: object = None) -> bool:
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(services, "record_inbound", broken)
    with caplog.at_level(logging.ERROR):
        response = post_signed(client, PATH, call_params(SID, "+919911278181", "+918047259725"))
    assert_reject(response)
    assert any(r.getMessage() == "call.spooled" for r in caplog.records)
    import redis

    from signup.calls.spool import REDIS_KEY
    from tests.helpers import REDIS_URL

    spooled = redis.Redis.from_url(REDIS_URL)
    assert spooled.llen(REDIS_KEY) == 1  # kept for the replay once the database is back
    spooled.delete(REDIS_KEY)


def test_many_distinct_calls_each_recorded(client: FlaskClient) -> None:
    for i in range(25):
        assert_reject(
            post_signed(
                client, PATH, call_params(f"CA{i:032x}", f"+9199112{i:05d}", "+918047259725")
            )
        )
    assert db.session.scalar(select(func.count()).select_from(Call)) == 25


def test_the_answer_has_the_security_headers_and_no_session(client: FlaskClient) -> None:
    client.set_cookie("session", "not-a-valid-session")  # providers send none; ignored anyway
    response = post_signed(client, PATH, call_params(SID, "+919911278181", "+918047259725"))
    assert_reject(response)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age" in response.headers["Strict-Transport-Security"]  # PUBLIC_BASE_URL: https
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")


def test_the_rate_limiter_skips_the_webhooks(app: Flask, client: FlaskClient) -> None:
    from signup.extensions import limiter

    with app.test_request_context(PATH, method="POST"):
        hooks = [f for f in app.before_request_funcs[None] if hasattr(f, "__wrapped__")]
        assert [getattr(f.__wrapped__, "__self__", None) for f in hooks] == [limiter]
        assert hooks[0]() is None  # the limiter's check does not run on a webhook
