"""Sending rules on PostgreSQL and Redis: quiet hours, blackouts, rate limits, carrier codes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from signup import clock
from signup.calls import services as calls
from signup.campaigns import services as campaigns
from signup.extensions import db
from signup.messaging import services
from signup.messaging.models import Message, MessageStatus
from signup.messaging.ratelimit import Grant, RedisRateLimiter
from signup.messaging.tasks import send_message
from signup.volunteers.models import Volunteer
from tests.helpers import ACCOUNT_SID, REDIS_URL, post_signed, twilio_sid
from tests.integration.factories import campaign, inbound

pytestmark = pytest.mark.usefixtures("db_session")
IST = ZoneInfo("Asia/Kolkata")
MOBILE = "+919911278181"


def ist(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=IST).astimezone(UTC)


@pytest.fixture
def at(app: Flask) -> Iterator[Any]:
    """Set the clock (and the default quiet hours back on) for the test."""
    app.config["SMS_QUIET_HOURS"] = "22:00-06:00"

    def set_time(moment: datetime) -> None:
        clock.set_clock(lambda: moment)

    yield set_time
    clock.set_clock(None)
    app.config["SMS_QUIET_HOURS"] = "off"


def join(phone: str = MOBILE) -> Any:
    result = calls.process_call(inbound(phone).id)
    assert result is not None
    return result


def only_message() -> Message:
    [message] = db.session.scalars(select(Message)).all()
    return message


def test_a_call_at_night_is_answered_at_six(at: Any) -> None:
    campaign()
    at(ist(21, 23, 15))
    result = join()
    assert result.message_ids == []  # nothing to publish now
    message = only_message()
    assert message.status == MessageStatus.PENDING
    assert message.next_attempt_at == ist(22, 6)
    at(ist(22, 5, 59))
    assert services.claim_due(10) == []
    at(ist(22, 6, 0))
    assert services.claim_due(10) == [message.id]
    assert send_message.run(message.id) == "sent"


def test_a_deferral_is_logged_in_the_organisers_time(
    at: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Both deferral paths (at creation, and at the worker) say `until` in Indian time."""
    campaign()
    caplog.set_level(logging.INFO, logger="signup.messaging.services")
    at(ist(21, 23, 15))
    join(MOBILE)
    at(ist(21, 21, 59))
    [message_id] = join("+919911278182").message_ids
    at(ist(21, 22, 1))
    send_message.run(message_id)
    untils = [r.until for r in caplog.records if r.getMessage() == "sms.deferred"]  # type: ignore[attr-defined]
    assert untils == ["2026-11-22T06:00:00+05:30", "2026-11-22T06:00:00+05:30"]


def test_a_campaign_can_override_the_quiet_hours(at: Any) -> None:
    campaign(quiet_hours="21:00-09:00")
    at(ist(21, 8, 30))
    join()
    assert only_message().next_attempt_at == ist(21, 9)


def test_a_due_message_reaching_the_worker_in_quiet_hours_waits(at: Any) -> None:
    campaign()
    at(ist(21, 21, 59))
    [message_id] = join().message_ids
    at(ist(21, 22, 1))  # the queue was slow: now it is quiet time
    assert send_message.run(message_id) is None
    message = only_message()
    assert (message.status, message.attempts) == (MessageStatus.PENDING, 0)
    assert message.next_attempt_at == ist(22, 6)


def test_nothing_is_sent_during_a_blackout_and_sending_resumes_after(at: Any) -> None:
    jan = campaign()
    campaigns.add_blackout(
        jan, starts_at=ist(21, 18), ends_at=ist(23, 18), reason="ECI silence period"
    )
    at(ist(22, 12))
    join()
    message = only_message()
    assert message.next_attempt_at == ist(23, 18)
    at(ist(23, 18))
    assert services.claim_due(10) == [message.id]
    assert send_message.run(message.id) == "sent"


def test_blackout_times_need_a_zone_and_an_order(app: Flask) -> None:
    campaign()
    db.session.commit()  # a savepoint: the failing commands below roll back only themselves
    runner = app.test_cli_runner()
    naive = runner.invoke(
        args=[
            "campaign",
            "blackout",
            "jan",
            "--start",
            "2026-05-01T18:00",
            "--end",
            "2026-05-03T18:00",
        ]
    )
    assert naive.exit_code != 0 and "time zone" in naive.stderr
    backwards = runner.invoke(
        args=[
            "campaign",
            "blackout",
            "jan",
            "--start",
            "2026-05-03T18:00+05:30",
            "--end",
            "2026-05-01T18:00+05:30",
        ]
    )
    assert backwards.exit_code != 0 and "end after" in backwards.stderr
    ok = runner.invoke(
        args=[
            "campaign",
            "blackout",
            "jan",
            "--start",
            "2026-05-01T18:00+05:30",
            "--end",
            "2026-05-03T18:00+05:30",
            "--reason",
            "poll",
        ]
    )
    assert ok.exit_code == 0, ok.stderr


@pytest.fixture
def redis_bucket(redis_client: redis.Redis) -> Iterator[RedisRateLimiter]:
    redis_client.delete("sms-rate:test:acct")
    yield RedisRateLimiter(redis.Redis.from_url(REDIS_URL), rate=20, burst=5, max_wait=0.5)
    redis_client.delete("sms-rate:test:acct")


def test_many_workers_together_never_exceed_the_rate(redis_bucket: RedisRateLimiter) -> None:
    sent: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + 1.5

    def worker() -> None:
        while time.monotonic() < stop:
            grant = redis_bucket.acquire("test:acct")
            if not grant.reserved:
                time.sleep(0.01)
                continue
            time.sleep(grant.wait)
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Over any stretch, at most burst + rate x elapsed sends (a little slack for the clock).
    for i, first in enumerate(sent):
        for last_index in range(i, len(sent)):
            window = sent[last_index] - first
            assert last_index - i + 1 <= 5 + 20 * window + 1
    assert len(sent) >= 5 + 20 * (stop - start) * 0.8  # and the rate is actually used


def test_a_long_rate_limit_wait_puts_the_message_back(app: Flask) -> None:
    class Full:
        def acquire(self, key: str) -> Grant:
            assert key == f"console:{app.extensions['sms_sender'].account}"
            return Grant(reserved=False, wait=3.0, not_before=time.monotonic() + 3.0)

    campaign()
    [message_id] = join().message_ids
    message = services.claim_for_sending(message_id)
    assert message is not None
    outcome = services.deliver(message, app.extensions["sms_sender"], Full())
    assert outcome.status is MessageStatus.PENDING
    db.session.refresh(message)
    assert (message.status, message.attempts) == (MessageStatus.PENDING, 0)
    assert message.next_attempt_at > clock.now() + timedelta(seconds=2)


def status(client: FlaskClient, sid: str, value: str, code: str) -> Any:
    return post_signed(
        client,
        "/webhooks/twilio/message-status",
        {"MessageSid": sid, "MessageStatus": value, "ErrorCode": code, "AccountSid": ACCOUNT_SID},
    )


def sent_message() -> Message:
    campaign()
    [message_id] = join().message_ids
    assert send_message.run(message_id) == "sent"
    message = db.session.get(Message, message_id)
    assert message is not None
    return as_twilio(message)


def as_twilio(message: Message) -> Message:
    """Give a message the console sender sent a Twilio id, as Twilio's status callbacks carry."""
    assert message.provider_message_id is not None
    message.provider = "twilio"  # reports apply only to the reporting provider's messages
    message.provider_message_id = twilio_sid(f"SM{message.provider_message_id}")
    db.session.flush()
    return message


@pytest.mark.parametrize("code", ["30003", "30008"])
def test_unreachable_handset_is_retried_once_later(client: FlaskClient, code: str) -> None:
    message = sent_message()
    first_sid = message.provider_message_id
    assert first_sid is not None
    status(client, first_sid, "undelivered", code)
    db.session.refresh(message)
    assert (message.status, message.resends) == (MessageStatus.PENDING, 1)
    assert message.next_attempt_at >= clock.now() + timedelta(minutes=29)
    message.next_attempt_at = clock.now()
    db.session.flush()
    assert services.claim_due(10) == [message.id]
    assert send_message.run(message.id) == "sent"
    db.session.refresh(message)
    as_twilio(message)
    assert message.provider_message_id != first_sid
    assert message.provider_message_id is not None
    status(client, message.provider_message_id, "undelivered", code)  # only once
    db.session.refresh(message)
    assert message.status == MessageStatus.UNDELIVERED


def test_do_not_call_registry_is_flagged_on_the_volunteer(client: FlaskClient) -> None:
    message = sent_message()
    assert message.provider_message_id is not None
    status(client, message.provider_message_id, "failed", "30004")
    volunteer = db.session.get(Volunteer, message.volunteer_id)
    assert volunteer is not None
    db.session.refresh(volunteer)
    assert volunteer.dnd_at is not None
    db.session.refresh(message)
    assert (message.status, message.error_code) == (MessageStatus.FAILED, 30004)
