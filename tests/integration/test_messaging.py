"""Sending through Twilio's API (a local fake at the HTTP boundary), retries and statuses."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from signup import clock
from signup.calls import services as calls
from signup.extensions import db
from signup.messaging import services
from signup.messaging.models import Message, MessageStatus
from signup.messaging.providers.twilio import TwilioSender
from signup.messaging.ratelimit import LocalRateLimiter
from signup.messaging.tasks import send_message
from signup.volunteers.models import ConsentEvent, Volunteer
from tests.fakes.twilio_api import FakeTwilio, Scripted
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_BASE_URL, post_signed, twilio_sid
from tests.integration.factories import campaign, inbound

MOBILE = "+919911278181"
pytestmark = pytest.mark.usefixtures("db_session")


@pytest.fixture
def twilio(app: Flask, fake_twilio: FakeTwilio) -> Iterator[FakeTwilio]:
    """Route the app's sender to the fake Twilio for the test."""
    original = app.extensions["sms_sender"]
    app.extensions["sms_sender"] = TwilioSender(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number="+15005550006",
        messaging_service_sid=None,
        base_url=fake_twilio.base_url,  # type: ignore[attr-defined]
        timeout=2,
        status_callback=f"{PUBLIC_BASE_URL}/webhooks/twilio/message-status",
    )
    yield fake_twilio
    app.extensions["sms_sender"] = original


def onboarding_message() -> Message:
    campaign()
    call = inbound(MOBILE)
    result = calls.process_call(call.id)
    assert result is not None
    [message_id] = result.message_ids
    message = db.session.get(Message, message_id)
    assert message is not None
    return message


def test_send_posts_the_exact_twilio_request(twilio: FakeTwilio) -> None:
    message = onboarding_message()
    assert send_message.run(message.id) == "sent"
    [request] = twilio.sms_requests()
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.form == {
        "To": MOBILE,
        "From": "+15005550006",
        "Body": message.body,
        "StatusCallback": f"{PUBLIC_BASE_URL}/webhooks/twilio/message-status",
    }
    expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    db.session.refresh(message)
    assert message.status == MessageStatus.SENT
    assert message.provider == "twilio"
    assert message.provider_message_id and message.provider_message_id.startswith("SM")
    assert message.attempts == 1


def test_a_duplicate_task_never_sends_twice(twilio: FakeTwilio) -> None:
    message = onboarding_message()
    send_message.run(message.id)
    assert send_message.run(message.id) is None
    assert len(twilio.sms_requests()) == 1


@pytest.mark.parametrize(
    "answer",
    [
        Scripted(500, {"message": "oops"}),
        Scripted(503, {"message": "unavailable"}),
        FakeTwilio.error(429, 20429, "Too Many Requests"),
    ],
    ids=["500", "503", "20429"],
)
def test_transient_failures_are_retried_later_with_backoff(
    twilio: FakeTwilio, answer: Scripted
) -> None:
    message = onboarding_message()
    twilio.script.append(answer)
    before = clock.now()
    assert send_message.run(message.id) == "pending"
    db.session.refresh(message)
    assert message.status == MessageStatus.PENDING
    assert message.attempts == 1
    assert message.next_attempt_at > before
    assert message.next_attempt_at <= before + timedelta(seconds=services.BACKOFF_BASE + 1)
    # not due yet: the relay leaves it alone
    assert message.id not in services.claim_due(100)
    clock.set_clock(lambda: message.next_attempt_at + timedelta(seconds=1))
    try:
        assert services.claim_due(100) == [message.id]
        assert send_message.run(message.id) == "sent"
    finally:
        clock.set_clock(None)
    assert len(twilio.sms_requests()) == 2


@pytest.mark.parametrize("code", [21211, 21614])
def test_permanent_failures_are_not_retried(twilio: FakeTwilio, code: int) -> None:
    message = onboarding_message()
    twilio.script.append(FakeTwilio.error(400, code))
    assert send_message.run(message.id) == "failed"
    db.session.refresh(message)
    assert (message.status, message.error_code) == (MessageStatus.FAILED, code)
    assert services.claim_due(100) == []
    assert db.session.get(Volunteer, message.volunteer_id).status == "active"  # type: ignore[union-attr]


def test_unsubscribed_recipient_is_marked_opted_out(twilio: FakeTwilio) -> None:
    message = onboarding_message()
    twilio.script.append(FakeTwilio.error(400, 21610, "Attempt to send to unsubscribed"))
    assert send_message.run(message.id) == "failed"
    volunteer = db.session.get(Volunteer, message.volunteer_id)
    assert volunteer is not None and volunteer.status == "opted_out"
    last = db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
    assert last is not None
    assert (last.event, last.channel, last.message_id) == ("withdrawn", "provider", message.id)
    assert len(twilio.sms_requests()) == 1  # and no confirmation is sent to them


def test_transient_failures_give_up_after_max_attempts(app: Flask, twilio: FakeTwilio) -> None:
    message = onboarding_message()
    app.config["SMS_MAX_ATTEMPTS"] = 3
    try:
        for _ in range(3):
            twilio.script.append(Scripted(500, {"message": "oops"}))
            db.session.execute(
                Message.__table__.update()
                .where(Message.id == message.id)
                .values(next_attempt_at=clock.now())
            )
            services.claim_due(10)
            send_message.run(message.id)
    finally:
        app.config["SMS_MAX_ATTEMPTS"] = 8
    db.session.refresh(message)
    assert (message.status, message.attempts) == (MessageStatus.FAILED, 3)


def test_backoff_grows_and_is_capped() -> None:
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (20, services.BACKOFF_CAP)]:
        for _ in range(20):
            assert ceiling / 2 <= services.backoff(attempt) <= ceiling


def test_a_send_abandoned_by_a_dead_worker_becomes_unknown_not_resent(
    twilio: FakeTwilio,
) -> None:
    message = onboarding_message()
    assert services.claim_for_sending(message.id) is not None  # then the worker died
    later = clock.now() + services.SENDING_STALE_AFTER + timedelta(seconds=1)
    clock.set_clock(lambda: later)
    try:
        assert services.mark_stale_sending_unknown() == 1
        assert services.claim_due(10) == []
    finally:
        clock.set_clock(None)
    db.session.refresh(message)
    assert message.status == MessageStatus.UNKNOWN
    assert send_message.run(message.id) is None
    assert twilio.sms_requests() == []


def test_relay_republishes_messages_the_broker_lost() -> None:
    message = onboarding_message()
    assert services.claim_due(10) == []  # queued just now: a task is on its way
    later = clock.now() + services.QUEUED_STALE_AFTER + timedelta(seconds=1)
    clock.set_clock(lambda: later)
    try:
        assert services.claim_due(10) == [message.id]
    finally:
        clock.set_clock(None)


def status(client: FlaskClient, sid: str, value: str, **extra: str) -> Any:
    params = {"MessageSid": sid, "MessageStatus": value, "AccountSid": ACCOUNT_SID, **extra}
    return post_signed(client, "/webhooks/twilio/message-status", params)


def test_status_callbacks_never_move_a_message_backwards(
    client: FlaskClient, twilio: FakeTwilio
) -> None:
    message = onboarding_message()
    send_message.run(message.id)
    db.session.refresh(message)
    sid = message.provider_message_id
    assert sid is not None
    assert status(client, sid, "delivered").status_code == 204
    assert status(client, sid, "sent").status_code == 204
    assert status(client, sid, "queued").status_code == 204
    db.session.refresh(message)
    assert message.status == MessageStatus.DELIVERED


def test_status_callback_keeps_the_error_code(client: FlaskClient, twilio: FakeTwilio) -> None:
    message = onboarding_message()
    send_message.run(message.id)
    db.session.refresh(message)
    assert message.provider_message_id is not None
    status(client, message.provider_message_id, "undelivered", ErrorCode="30005")
    db.session.refresh(message)
    assert (message.status, message.error_code) == (MessageStatus.UNDELIVERED, 30005)


def test_unsigned_status_callback_is_refused(client: FlaskClient) -> None:
    response = client.post(
        "/webhooks/twilio/message-status", data={"MessageSid": "SMx", "MessageStatus": "delivered"}
    )
    assert response.status_code == 403


def test_unknown_message_sid_is_ignored(client: FlaskClient) -> None:
    assert status(client, "SM" + "0" * 32, "delivered").status_code == 204


def test_stop_reply_withdraws_and_start_rejoins(client: FlaskClient) -> None:
    message = onboarding_message()
    path = "/webhooks/twilio/sms"
    params = {
        "MessageSid": twilio_sid("SM1"),
        "From": MOBILE,
        "To": "+15005550006",
        "Body": " stop ",
        "OptOutType": "STOP",
    }
    response = post_signed(client, path, params)
    assert response.status_code == 200 and b"<Response" in response.data
    volunteer = db.session.get(Volunteer, message.volunteer_id)
    assert volunteer is not None
    db.session.refresh(volunteer)
    assert volunteer.status == "opted_out"
    post_signed(
        client, path, {**params, "MessageSid": twilio_sid("SM2"), "Body": "We must STOP this bill"}
    )
    retry = {**params, "MessageSid": twilio_sid("SM1"), "Body": "START"}  # a retry of SM1
    post_signed(client, path, retry)
    db.session.refresh(volunteer)
    assert volunteer.status == "opted_out"
    start = {"MessageSid": twilio_sid("SM3"), "Body": "START", "OptOutType": "START"}
    post_signed(client, path, {**params, **start})
    db.session.refresh(volunteer)
    assert volunteer.status == "active"
    events = [
        e for (e,) in db.session.execute(select(ConsentEvent.event).order_by(ConsentEvent.id))
    ]
    assert events == ["given", "withdrawn", "re_given"]
    assert len(list(db.session.scalars(select(Message)))) == 1  # STOP is never answered


def test_unsigned_inbound_sms_is_refused(client: FlaskClient) -> None:
    response = client.post("/webhooks/twilio/sms", data={"From": MOBILE, "Body": "STOP"})
    assert response.status_code == 403


def test_clock_is_timezone_aware() -> None:
    assert clock.now().tzinfo is not None
    clock.set_clock(lambda: datetime(2026, 1, 1, tzinfo=UTC))
    try:
        assert clock.now().year == 2026
    finally:
        clock.set_clock(None)


def test_messaging_service_sid_replaces_from(fake_twilio: FakeTwilio) -> None:
    message = onboarding_message()
    service = "MG" + "a" * 32
    sender = TwilioSender(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=None,
        messaging_service_sid=service,
        base_url=fake_twilio.base_url,  # type: ignore[attr-defined]
    )
    services.claim_for_sending(message.id)
    services.deliver(message, sender, LocalRateLimiter(rate=10, burst=10, max_wait=1))
    [request] = fake_twilio.sms_requests()
    assert request.form == {"To": MOBILE, "Body": message.body, "MessagingServiceSid": service}


def test_twilio_status_callback_comes_from_public_base_url() -> None:
    config = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": "+15005550006",
    }
    with_url = TwilioSender.from_config({**config, "PUBLIC_BASE_URL": "https://x.org/"})
    assert with_url._status_callback == "https://x.org/webhooks/twilio/message-status"
    assert TwilioSender.from_config(config)._status_callback is None


def test_twilio_sender_needs_a_from_number_or_service() -> None:
    with pytest.raises(ValueError, match="TWILIO_FROM_NUMBER"):
        TwilioSender(
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            from_number=None,
            messaging_service_sid=None,
        )


@pytest.mark.parametrize(
    "answer",
    [Scripted(drop=True), Scripted(delay=3)],
    ids=["dropped after the request", "no answer in time"],
)
def test_a_send_without_an_answer_is_marked_for_review_never_resent(
    app: Flask, twilio: FakeTwilio, answer: Scripted
) -> None:
    message = onboarding_message()
    twilio.script.append(answer)
    app.extensions["sms_sender"].timeout = 1  # shorter than the delay
    assert send_message.run(message.id) == "unknown"
    db.session.refresh(message)
    assert message.status == MessageStatus.UNKNOWN and "review" in (message.error_message or "")
    assert services.claim_due(10) == []
    assert send_message.run(message.id) is None
    assert len(twilio.sms_requests()) == 1


def test_a_refused_connection_never_sent_anything_so_it_is_retried(app: Flask) -> None:
    message = onboarding_message()
    sender = TwilioSender(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number="+15005550006",
        messaging_service_sid=None,
        base_url="http://127.0.0.1:1",
        timeout=2,
    )
    services.claim_for_sending(message.id)
    outcome = services.deliver(message, sender, LocalRateLimiter(rate=10, burst=10, max_wait=1))
    assert outcome.status is MessageStatus.PENDING
    assert message.attempts == 1 and message.next_attempt_at > clock.now()
