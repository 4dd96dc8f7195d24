"""Batched sending (send_messages), the lean Twilio client, Retry-After and the backoff base."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from sqlalchemy import select

from signup import clock
from signup.calls import services as calls
from signup.extensions import db
from signup.messaging import services
from signup.messaging.models import Message, MessageStatus
from signup.messaging.providers.twilio import TwilioSender
from signup.messaging.ratelimit import LocalRateLimiter, RedisRateLimiter
from signup.messaging.tasks import chunks, send_messages
from signup.volunteers.models import Volunteer
from tests.fakes.twilio_api import FakeTwilio, Scripted
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, REDIS_URL
from tests.integration.factories import campaign, inbound

pytestmark = pytest.mark.usefixtures("db_session")
PEOPLE = [f"+9199112{n:05d}" for n in range(12)]


@pytest.fixture
def twilio(app: Flask, fake_twilio: FakeTwilio) -> Iterator[FakeTwilio]:
    """Route the app's sender to the fake Twilio, with a rate limit that never binds."""
    original = app.extensions["sms_sender"], app.extensions["sms_rate_limiter"]
    app.extensions["sms_rate_limiter"] = LocalRateLimiter(rate=1000, burst=1000, max_wait=1)
    app.extensions["sms_sender"] = TwilioSender(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number="+15005550006",
        messaging_service_sid=None,
        base_url=fake_twilio.base_url,  # type: ignore[attr-defined]
        timeout=2,
    )
    yield fake_twilio
    app.extensions["sms_sender"], app.extensions["sms_rate_limiter"] = original


def onboarding_messages() -> list[int]:
    """One queued onboarding SMS for each of PEOPLE."""
    campaign()
    ids: list[int] = []
    for phone in PEOPLE:
        result = calls.process_call(inbound(phone).id)
        assert result is not None
        ids += result.message_ids
    return ids


def rows(ids: list[int]) -> dict[str, Message]:
    db.session.expire_all()
    return {m.to_phone: m for m in db.session.scalars(select(Message).where(Message.id.in_(ids)))}


def test_a_batch_is_sent_once_and_a_duplicate_batch_claims_nothing(twilio: FakeTwilio) -> None:
    ids = onboarding_messages()
    assert send_messages.run(ids) == len(PEOPLE)
    assert send_messages.run(ids) == 0
    assert sorted(r.form["To"] for r in twilio.sms_requests()) == sorted(PEOPLE)
    found = rows(ids)
    assert {m.status for m in found.values()} == {MessageStatus.SENT}
    assert len({m.provider_message_id for m in found.values()}) == len(PEOPLE)
    assert {(m.attempts, m.provider) for m in found.values()} == {(1, "twilio")}


def test_each_outcome_in_a_batch_is_recorded_on_its_own_message(twilio: FakeTwilio) -> None:
    ids = onboarding_messages()
    retry, permanent, gone, unknown = PEOPLE[:4]
    twilio.by_recipient[retry] = deque([FakeTwilio.error(500, 20500, "oops")])
    twilio.by_recipient[permanent] = deque([FakeTwilio.error(400, 21211, "invalid 'To'")])
    twilio.by_recipient[gone] = deque([FakeTwilio.error(400, 21610, "unsubscribed")])
    twilio.by_recipient[unknown] = deque([Scripted(drop=True)])
    send_messages.run(ids)
    found = rows(ids)
    assert (found[retry].status, found[retry].error_code) == (MessageStatus.PENDING, 20500)
    assert found[retry].next_attempt_at > clock.now()
    assert (found[permanent].status, found[permanent].error_code) == (MessageStatus.FAILED, 21211)
    assert found[gone].status == MessageStatus.FAILED
    assert found[gone].error_message == "twilio 400: Unable to create record: unsubscribed"
    assert found[unknown].status == MessageStatus.UNKNOWN
    assert "review" in (found[unknown].error_message or "")
    assert {found[p].status for p in PEOPLE[4:]} == {MessageStatus.SENT}
    volunteer = db.session.get(Volunteer, found[gone].volunteer_id)
    assert volunteer is not None and volunteer.status == "opted_out"


def test_quiet_hours_defer_a_batch_without_claiming_it(app: Flask, twilio: FakeTwilio) -> None:
    ids = onboarding_messages()
    app.config["SMS_QUIET_HOURS"] = "22:00-06:00"
    night = datetime(2026, 11, 3, 23, 0, tzinfo=ZoneInfo("Asia/Kolkata")).astimezone(UTC)
    clock.set_clock(lambda: night)
    try:
        assert send_messages.run(ids) == 0
    finally:
        clock.set_clock(None)
        app.config["SMS_QUIET_HOURS"] = "off"
    found = rows(ids)
    assert {(m.status, m.attempts) for m in found.values()} == {(MessageStatus.PENDING, 0)}
    assert min(m.next_attempt_at for m in found.values()) > night + timedelta(hours=6)
    assert twilio.sms_requests() == []


def test_a_429_retry_after_is_waited_at_least(twilio: FakeTwilio) -> None:
    [message_id, *_] = onboarding_messages()
    twilio.script.append(Scripted(429, {"code": 20429}, headers={"Retry-After": "120"}))
    before = clock.now()
    send_messages.run([message_id])
    message = rows([message_id])[PEOPLE[0]]
    assert message.status == MessageStatus.PENDING
    assert message.next_attempt_at >= before + timedelta(seconds=120)


def test_the_backoff_base_comes_from_the_config(app: Flask) -> None:
    app.config["SMS_BACKOFF_BASE"] = 0.25
    try:
        assert all(0.125 <= services.backoff(1) <= 0.25 for _ in range(50))
        assert all(0.5 <= services.backoff(3) <= 1.0 for _ in range(50))
    finally:
        app.config["SMS_BACKOFF_BASE"] = services.BACKOFF_BASE


def test_one_call_reserves_many_slots_spaced_by_the_rate() -> None:
    limiter = LocalRateLimiter(rate=100, burst=1, max_wait=0.1)
    grants = limiter.acquire_many("t:acct", 15)
    assert [g.reserved for g in grants] == [True] * 11 + [False] * 4
    waits = [g.wait for g in grants[:11]]
    assert waits[0] == 0 and all(abs(b - a - 0.01) < 1e-6 for a, b in itertools.pairwise(waits))
    assert grants[11].wait > 0.1


def test_redis_reserves_many_slots_in_one_round_trip(redis_client: redis.Redis) -> None:
    redis_client.delete("sms-rate:batch:acct")
    limiter = RedisRateLimiter(redis.Redis.from_url(REDIS_URL), rate=50, burst=5, max_wait=0.2)
    first = limiter.acquire_many("batch:acct", 30)
    reserved = [g for g in first if g.reserved]
    assert 14 <= len(reserved) <= 16  # 5 at once, then 10 more within 0.2 s at 50/s
    assert max(g.wait for g in reserved) <= 0.2
    assert not limiter.acquire_many("batch:acct", 1)[0].reserved  # the bucket is spent
    redis_client.delete("sms-rate:batch:acct")


def test_chunks_cover_every_id_once() -> None:
    ids = list(range(1, 121))
    batches = chunks(ids, 50)
    assert [len(batch) for (batch,) in batches] == [50, 50, 20]
    assert [i for (batch,) in batches for i in batch] == ids


def test_slots_count_from_when_redis_was_asked_not_from_a_late_reply(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply read late (a busy worker) must not move the batch's slots later: they would
    overlap the slots reserved after them and bunch above the rate."""
    redis_client.delete("sms-rate:anchor:acct")
    limiter = RedisRateLimiter(redis.Redis.from_url(REDIS_URL), rate=50, burst=1, max_wait=1)
    script = limiter._script

    def read_late(**kwargs: Any) -> Any:
        answer = script(**kwargs)
        time.sleep(0.2)
        return answer

    monkeypatch.setattr(limiter, "_script", read_late)
    asked = time.monotonic()
    grants = limiter.acquire_many("anchor:acct", 5)
    assert time.monotonic() - asked >= 0.2
    assert all(g.reserved for g in grants)
    assert [round(g.wait, 3) for g in grants] == [0, 0.02, 0.04, 0.06, 0.08]
    for grant in grants:
        assert asked <= grant.not_before - grant.wait < asked + 0.05
    redis_client.delete("sms-rate:anchor:acct")
