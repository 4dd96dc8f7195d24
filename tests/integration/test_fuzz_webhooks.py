"""Hostile input: whatever the fields, a signed webhook never gets a 500, an unsigned one 403."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signup.calls.providers.twilio import CALL_SID, MESSAGE_SID
from tests.helpers import post_signed, twilio_sid

pytestmark = pytest.mark.usefixtures("db_session")
TOKEN = "exotel-webhook-secret-0123456789"

names = st.sampled_from(
    [
        "CallSid",
        "From",
        "To",
        "Caller",
        "Called",
        "AccountSid",
        "Body",
        "MessageSid",
        "MessageStatus",
        "ErrorCode",
        "OptOutType",
        "Digits",
        "CallStatus",
        "SmsSid",
        "Status",
        "DetailedStatusCode",
    ]
)
values = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="0123456789+- ()०१२३४५६७८९", max_size=30),
    st.sampled_from(
        [
            "",
            "anonymous",
            "STOP",
            "बंद",
            "delivered",
            "failed_dnd",
            "30003",
            "\x00",
            "%s%s%n",
            "' OR 1=1 --",
            "=cmd|'/C calc'!A0",
            "9" * 5000,
            twilio_sid("CA1"),
            twilio_sid("SM1"),
            twilio_sid("MM1"),
        ]
    ),
)
forms = st.dictionaries(st.one_of(names, st.text(min_size=1, max_size=20)), values, max_size=12)
settings_ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TWILIO = ["/webhooks/twilio/voice", "/webhooks/twilio/sms", "/webhooks/twilio/message-status"]
ID_FIELD = {
    TWILIO[0]: ("CallSid", CALL_SID),
    TWILIO[1]: ("MessageSid", MESSAGE_SID),
    TWILIO[2]: ("MessageSid", MESSAGE_SID),
}


@pytest.fixture(autouse=True)
def exotel_token(app: Flask) -> Any:
    app.config["EXOTEL_WEBHOOK_TOKEN"] = TOKEN
    yield
    app.config["EXOTEL_WEBHOOK_TOKEN"] = None


@settings_
@given(path=st.sampled_from(TWILIO), form=forms)
def test_signed_twilio_webhooks_never_fail(app: Flask, path: str, form: dict[str, str]) -> None:
    """Taken with a well-formed id; else a 400 (test_webhook_ids.py); never a 500."""
    response = post_signed(app.test_client(), path, form)
    name, pattern = ID_FIELD[path]
    expected = (200, 204) if pattern.fullmatch(form.get(name, "")) else (400,)
    assert response.status_code in expected, (path, form, response.status_code)


@settings_
@given(path=st.sampled_from(TWILIO), form=forms)
def test_unsigned_twilio_webhooks_are_refused(app: Flask, path: str, form: dict[str, str]) -> None:
    response = app.test_client().post(path, data=form, headers={"X-Twilio-Signature": "forged"})
    assert response.status_code == 403


@settings_
@given(kind=st.sampled_from(["call", "sms", "sms-status"]), form=forms, good=st.booleans())
def test_exotel_webhooks(app: Flask, kind: str, form: dict[str, str], good: bool) -> None:
    token = TOKEN if good else "not-the-token-0123456789"
    client = app.test_client()
    path = f"/webhooks/exotel/{token}/{kind}"
    if kind == "sms-status":
        response = client.post(path, data=form)
    else:
        response = client.get(path, query_string=form)
    expected = (200, 400) if good else (403,)  # 400: no sane SmsSid/CallSid (test_webhook_ids.py)
    assert response.status_code in expected, (kind, form, response.status_code)


@pytest.mark.parametrize("path", TWILIO)
def test_oversized_bodies_get_413(app: Flask, path: str) -> None:
    response = post_signed(app.test_client(), path, {"Body": "x" * 100_000})
    assert response.status_code == 413
