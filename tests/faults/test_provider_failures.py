"""Twilio's SMS API failing under a real Celery worker: retried with backoff, or left for review.

Calls come in through the signed voice webhook; a real worker (with beat) processes them and
sends through the fake Twilio, which answers each recipient as scripted. Whatever the failure,
no person is sent the onboarding SMS twice: the fake counts what it accepted per recipient.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from signup.extensions import db
from signup.messaging import services
from signup.messaging.models import Message, MessageStatus
from tests.e2e.conftest import Worker, wait_for
from tests.fakes.twilio_api import FakeTwilio, Scripted
from tests.helpers import call_params, post_signed
from tests.integration.factories import campaign

pytestmark = pytest.mark.e2e

MAX_ATTEMPTS = 3
HTTP_TIMEOUT = 1.0
SETTINGS = {
    "SMS_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "SMS_HTTP_TIMEOUT": str(HTTP_TIMEOUT),
    "SMS_RATE_PER_SECOND": "50",
}

E500 = FakeTwilio.error(500, 20500, "internal server error")
E429 = FakeTwilio.error(429, 20429, "too many requests")
E429_RETRY_AFTER = Scripted(429, E429.body, headers={"Retry-After": "1"})
PERMANENT = FakeTwilio.error(400, 21211, "invalid 'To' phone number")
SLOW = Scripted(delay=HTTP_TIMEOUT * 3)  # answers 201, but only after the sender gave up
DROPPED = Scripted(drop=True)  # the connection closes after the request, with no answer
CUT = Scripted(cut=True)  # the 201 starts, then the connection closes mid-answer
TERMINAL = (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.UNKNOWN)


@dataclass(frozen=True)
class Case:
    """What the fake answers one recipient, and what must come of it."""

    script: tuple[Scripted, ...]
    status: MessageStatus
    requests: int  # how many requests the fake sees for this recipient, in all
    accepted: int  # how many of them it accepted (2xx): the SMS the person gets


HEALTHY = Case((), MessageStatus.SENT, 1, 1)
SCENARIOS: dict[str, list[Case]] = {
    "500": [
        Case((E500, E500), MessageStatus.SENT, 3, 1),
        Case((E500,) * MAX_ATTEMPTS, MessageStatus.FAILED, MAX_ATTEMPTS, 0),
        Case((E500, PERMANENT), MessageStatus.FAILED, 2, 0),
    ],
    "429": [
        Case((E429, E429), MessageStatus.SENT, 3, 1),
        Case((E429,) * MAX_ATTEMPTS, MessageStatus.FAILED, MAX_ATTEMPTS, 0),
    ],
    "429 with Retry-After": [
        Case((E429_RETRY_AFTER, E429_RETRY_AFTER), MessageStatus.SENT, 3, 1),
        Case((E429_RETRY_AFTER,) * MAX_ATTEMPTS, MessageStatus.FAILED, MAX_ATTEMPTS, 0),
    ],
    "timeout": [
        Case((SLOW,), MessageStatus.UNKNOWN, 1, 1),
        Case((E500, SLOW), MessageStatus.UNKNOWN, 2, 1),
    ],
    "connection closed": [
        Case((DROPPED,), MessageStatus.UNKNOWN, 1, 0),
        Case((CUT,), MessageStatus.UNKNOWN, 1, 1),
        Case((E500, DROPPED), MessageStatus.UNKNOWN, 2, 0),
    ],
}


def messages() -> dict[str, Message]:
    """Every message by recipient, read afresh."""
    db.session.remove()
    return {m.to_phone: m for m in db.session.scalars(select(Message))}


def settled(expected: int) -> bool:
    """True when all `expected` messages have reached sent, failed or unknown."""
    db.session.remove()
    done = db.session.scalar(
        select(func.count()).select_from(Message).where(Message.status.in_(TERMINAL))
    )
    return done == expected


def retries_logged(worker: Worker) -> dict[int, list[tuple[int, float]]]:
    """(attempt, seconds) of every retry the worker scheduled, by message id."""
    found: dict[int, list[tuple[int, float]]] = {}
    for line in worker.output().splitlines():
        if not line.startswith("{"):
            continue
        try:
            record: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "sms.retry_scheduled":
            found.setdefault(int(record["message_id"]), []).append(
                (int(record["attempts"]), float(record["retry_in"]))
            )
    return found


def ceiling(attempt: int) -> float:
    """The longest backoff before retry number `attempt` (services.backoff draws from the top
    half of it)."""
    return min(services.BACKOFF_CAP, services.BACKOFF_BASE * 2 ** max(attempt - 1, 0))


@pytest.mark.parametrize("failure", list(SCENARIOS))
def test_provider_failure_is_retried_or_left_for_review_never_sent_twice(
    committed: Flask,
    start_worker: Callable[..., Worker],
    fake_twilio: FakeTwilio,
    failure: str,
) -> None:
    number = campaign().number
    db.session.commit()
    cases = [HEALTHY, *SCENARIOS[failure]]
    people = {f"+9197{index:08d}": case for index, case in enumerate(cases)}
    for phone, case in people.items():
        fake_twilio.by_recipient[phone] = deque(case.script)
    worker = start_worker(beat=True, **SETTINGS)
    client = committed.test_client()
    for index, phone in enumerate(people):
        response = post_signed(
            client, "/webhooks/twilio/voice", call_params(f"CA{index:032x}", phone, number)
        )
        assert response.status_code == 200 and b"<Reject" in response.data

    wait_for(lambda: settled(len(people)), 90, f"every message to settle after {failure}")
    time.sleep(5)  # more relay ticks (every 2 s): nothing settled may be sent again

    found = messages()
    retries = retries_logged(worker)
    requests = [r.form.get("To") for r in fake_twilio.sms_requests()]
    for phone, case in people.items():
        message = found[phone]
        assert message.status == case.status, (phone, case, message.error_message)
        assert requests.count(phone) == case.requests == message.attempts, (phone, case)
        assert fake_twilio.accepted(phone) == case.accepted <= 1, (phone, case)
        if case.status is MessageStatus.UNKNOWN:
            assert "review" in (message.error_message or "")
        # Every retry waited an exponential, jittered backoff: attempt n in [c/2, c], c = 2^n s.
        scheduled = retries.get(message.id, [])
        transient = sum(1 for s in case.script if s.status in (429, 500))
        assert len(scheduled) == min(transient, MAX_ATTEMPTS - 1), (phone, scheduled)
        for attempt, seconds in scheduled:
            assert ceiling(attempt) / 2 - 0.05 <= seconds <= ceiling(attempt) + 0.05
        assert [attempt for attempt, _ in scheduled] == list(range(1, len(scheduled) + 1))
