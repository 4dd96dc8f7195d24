"""Exotel: missed calls through the Passthru applet, SMS with DLT fields, reports, replies."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from signup.calls import services as calls
from signup.calls.models import Call, CallOutcome
from signup.campaigns import services as campaigns
from signup.extensions import db
from signup.messaging.models import Message, MessageStatus
from signup.messaging.providers.exotel import ExotelSender
from signup.messaging.tasks import send_message
from signup.volunteers.models import Volunteer
from tests.fakes.twilio_api import FakeExotel, Scripted
from tests.helpers import PUBLIC_BASE_URL
from tests.integration.factories import NUMBER, campaign

pytestmark = pytest.mark.usefixtures("db_session")
TOKEN = "exotel-webhook-secret-0123456789"
SID, KEY, SECRET = "exo_account", "exo_api_key", "exo_api_token"
MOBILE = "+919911278181"
ONBOARDING_TEMPLATE = (
    "{#var#}: thank you for your missed call, you have joined as a volunteer. "
    "We keep only your number, for campaign updates. "
    "To leave, give a missed call to {#var#}."
)


@pytest.fixture(autouse=True)
def exotel_config(app: Flask) -> Iterator[None]:
    app.config.update(EXOTEL_WEBHOOK_TOKEN=TOKEN, EXOTEL_ALLOWED_NETWORKS=[])
    yield
    app.config.update(EXOTEL_WEBHOOK_TOKEN=None, EXOTEL_ALLOWED_NETWORKS=[])


@pytest.fixture
def exotel(app: Flask) -> Iterator[FakeExotel]:
    fake = FakeExotel()
    base = fake.start()
    original = app.extensions["sms_sender"]
    app.extensions["sms_sender"] = ExotelSender.from_config(
        {
            **app.config,
            "EXOTEL_ACCOUNT_SID": SID,
            "EXOTEL_API_KEY": KEY,
            "EXOTEL_API_TOKEN": SECRET,
            "EXOTEL_API_BASE_URL": base,
        }
    )
    yield fake
    app.extensions["sms_sender"] = original
    fake.stop()


def passthru(client: FlaskClient, token: str = TOKEN, **params: str) -> Any:
    query = {
        "CallSid": "b6cfa7bb0b3a1e4d1d2b3c4d5e6f7a8b",
        "CallFrom": "09911278181",
        "CallTo": "08047259725",
        "Direction": "incoming",
        "CallType": "call-attempt",
        "Created": "Sat, 21 Nov 2026 10:00:00",
        "CurrentTime": "2026-11-21 10:00:01",
        "digits": '""',
    }
    query.update(params)
    return client.get(f"/webhooks/exotel/{token}/call", query_string=query)


def test_passthru_records_the_call_and_answers_plain_200(client: FlaskClient) -> None:
    response = passthru(client)
    assert response.status_code == 200
    assert response.mimetype == "text/plain" and response.data == b""
    [call] = db.session.scalars(select(Call)).all()
    assert (call.provider, call.provider_call_id) == ("exotel", "b6cfa7bb0b3a1e4d1d2b3c4d5e6f7a8b")
    assert (call.from_raw, call.caller, call.called) == ("09911278181", MOBILE, NUMBER)


def test_older_accounts_send_from_and_to(client: FlaskClient) -> None:
    response = client.get(
        f"/webhooks/exotel/{TOKEN}/call",
        query_string={"CallSid": "abc", "From": "09911278181", "To": "08047259725"},
    )
    assert response.status_code == 200
    call = db.session.scalar(select(Call))
    assert call is not None and call.caller == MOBILE and call.called == NUMBER


def test_exotel_calls_feed_the_same_pipeline(client: FlaskClient) -> None:
    campaign()
    passthru(client)
    passthru(client)  # Exotel retried: still one call
    [call] = db.session.scalars(select(Call)).all()
    result = calls.process_call(call.id)
    assert result is not None and result.outcome is CallOutcome.JOINED
    assert db.session.scalar(select(Volunteer.phone)) == MOBILE


@pytest.mark.parametrize("token", ["wrong-token-0123456789-abcdef", TOKEN[:-1], TOKEN + "x"])
def test_wrong_token_is_403_and_stores_nothing(
    client: FlaskClient, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert passthru(client, token=token).status_code == 403
    assert db.session.scalars(select(Call)).all() == []
    assert token not in caplog.text  # the route is logged, never the token


def test_no_configured_token_refuses_everything(app: Flask, client: FlaskClient) -> None:
    app.config["EXOTEL_WEBHOOK_TOKEN"] = None
    assert passthru(client).status_code == 403


def test_ip_allowlist(app: Flask, client: FlaskClient) -> None:
    from signup.config import allowed_networks

    app.config["EXOTEL_ALLOWED_NETWORKS"] = allowed_networks("10.1.0.0/16, 192.0.2.7")
    assert passthru(client).status_code == 403  # the test client is 127.0.0.1
    ok = client.get(
        f"/webhooks/exotel/{TOKEN}/call",
        query_string={"CallSid": "x1"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert ok.status_code == 200


def test_short_webhook_token_is_refused_at_start() -> None:
    from signup import create_app
    from signup.config import ConfigError
    from tests.helpers import base_config

    with pytest.raises(ConfigError, match="EXOTEL_WEBHOOK_TOKEN"):
        create_app(base_config(EXOTEL_WEBHOOK_TOKEN="short"))


def dlt_campaign(language: str = "en") -> Any:
    jan = campaign(language=language)
    campaigns.set_dlt(jan, entity_id="1234567890123", header="JANSEV")
    text = (
        ONBOARDING_TEMPLATE
        if language == "en"
        else ("{#var#} से जुड़ने का धन्यवाद। हम केवल आपका नंबर रखेंगे। छोड़ने हेतु {#var#} पर मिस्ड कॉल दें।")
    )
    campaigns.set_template(jan, kind="onboarding", template_id="1107160000000012345", text=text)
    return jan


def joined_message() -> Message:
    [call_id] = [c.id for c in db.session.scalars(select(Call))] or [None]
    if call_id is None:
        from tests.integration.factories import inbound

        call_id = inbound(MOBILE).id
    result = calls.process_call(call_id)
    assert result is not None
    message = db.session.get(Message, result.message_ids[0])
    assert message is not None
    return message


@pytest.mark.parametrize("language", ["en", "hi"])
def test_sms_goes_out_with_dlt_fields(exotel: FakeExotel, language: str) -> None:
    dlt_campaign(language)
    message = joined_message()
    assert send_message.run(message.id) == "sent"
    [request] = exotel.sms_requests()
    assert request.path == f"/v1/Accounts/{SID}/Sms/send.json"
    expected = {
        "From": "JANSEV",
        "To": MOBILE,
        "Body": message.body,
        "DltEntityId": "1234567890123",
        "DltTemplateId": "1107160000000012345",
        "SmsType": "transactional",
        "StatusCallback": f"{PUBLIC_BASE_URL}/webhooks/exotel/{TOKEN}/sms-status",
    }
    if language == "hi":
        expected["EncodingType"] = "unicode"
    assert request.form == expected
    auth = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {auth}"
    db.session.refresh(message)
    assert message.status == MessageStatus.SENT and message.provider == "exotel"


def test_without_dlt_registration_exotel_sends_nothing(exotel: FakeExotel) -> None:
    campaign()
    message = joined_message()
    assert send_message.run(message.id) == "failed"
    db.session.refresh(message)
    assert "DLT" in (message.error_message or "")
    assert exotel.sms_requests() == []


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (Scripted(500, {"message": "oops"}), "pending"),
        (FakeExotel.error(429, 429, "Too many"), "pending"),
        (Scripted(drop=True), "unknown"),  # it may have arrived: for review, never resent
        (FakeExotel.error(400, 23010, "Invalid number"), "failed"),
    ],
)
def test_exotel_failures(exotel: FakeExotel, answer: Scripted, status: str) -> None:
    dlt_campaign()
    message = joined_message()
    exotel.script.append(answer)
    assert send_message.run(message.id) == status


def report(client: FlaskClient, sid: str, status: str, token: str = TOKEN, **extra: str) -> Any:
    return client.post(
        f"/webhooks/exotel/{token}/sms-status",
        data={"SmsSid": sid, "Status": status, "To": MOBILE, **extra},
    )


def test_exotel_delivery_reports(client: FlaskClient, exotel: FakeExotel) -> None:
    dlt_campaign()
    message = joined_message()
    send_message.run(message.id)
    db.session.refresh(message)
    sid = message.provider_message_id
    assert sid is not None
    assert report(client, sid, "delivered", token="wrong-token-0123456789").status_code == 403
    assert report(client, sid, "submitted").status_code == 200  # in flight: no change
    assert report(client, sid, "delivered", DetailedStatusCode="20005").status_code == 200
    assert report(client, sid, "sent").status_code == 200  # late and out of order
    db.session.refresh(message)
    assert message.status == MessageStatus.DELIVERED


def test_exotel_dnd_failure_flags_the_volunteer(client: FlaskClient, exotel: FakeExotel) -> None:
    dlt_campaign()
    message = joined_message()
    send_message.run(message.id)
    db.session.refresh(message)
    assert message.provider_message_id is not None
    report(client, message.provider_message_id, "failed_dnd", DetailedStatusCode="23005")
    db.session.refresh(message)
    volunteer = db.session.get(Volunteer, message.volunteer_id)
    assert message.status == MessageStatus.FAILED and message.error_code == 23005
    assert volunteer is not None and volunteer.dnd_at is not None


def test_exotel_inbound_stop(client: FlaskClient) -> None:
    campaign()
    joined_message()
    response = client.get(
        f"/webhooks/exotel/{TOKEN}/sms",
        query_string={"SmsSid": "in1", "From": "09911278181", "To": "08047259725", "Body": "STOP"},
    )
    assert response.status_code == 200
    assert db.session.scalar(select(Volunteer.status)) == "opted_out"
    forged = client.get(
        "/webhooks/exotel/nope-nope-nope-nope/sms",
        query_string={"From": "09911278181", "Body": "START"},
    )
    assert forged.status_code == 403
