"""Twilio delivering the same webhook many times at once, against a real gunicorn.

Each signed call is posted 20 times at the same instant (a barrier per call), for 40 calls from
20 callers; then every message's status callbacks arrive three times each, shuffled, 16 at a
time. Nothing is doubled: one call row per CallSid, exact call counts, one SMS per person, and
every message ends in its most advanced status.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from signup.calls.models import Call, CallState
from signup.extensions import db
from signup.messaging.models import Message, MessageStatus
from signup.volunteers.models import Volunteer
from tests.e2e.conftest import Worker, wait_for
from tests.fakes.twilio_api import FakeTwilio
from tests.faults.web import served
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, DATABASE_URL, REDIS_URL
from tests.integration.factories import campaign

pytestmark = pytest.mark.e2e

COPIES = 20  # deliveries of each call, all at once
CALLERS = 20
WAVE = 5  # calls fired together: 5 x 20 = 100 requests in flight


def count(model: Any, *where: Any) -> int:
    """Rows of `model` matching `where`, read afresh."""
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def post(base: str, path: str, params: dict[str, str]) -> requests.Response:
    """POST form parameters signed as Twilio would sign them for this server."""
    url = base + path
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    return requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=30)


def deliver_at_once(base: str, calls: list[dict[str, str]]) -> list[requests.Response]:
    """Post each call COPIES times; the copies of one call wait at a barrier and go together."""
    answers: list[requests.Response] = []
    with ThreadPoolExecutor(WAVE * COPIES) as pool:
        for start in range(0, len(calls), WAVE):
            futures = []
            for params in calls[start : start + WAVE]:
                barrier = threading.Barrier(COPIES)

                def ring(params: dict[str, str] = params, barrier: Any = barrier) -> Any:
                    barrier.wait(timeout=30)
                    return post(base, "/webhooks/twilio/voice", params)

                futures += [pool.submit(ring) for _ in range(COPIES)]
            answers += [future.result() for future in futures]
    return answers


def test_concurrent_duplicate_webhooks_are_applied_once(
    committed: Flask,
    start_worker: Callable[..., Worker],
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    number = campaign().number
    db.session.commit()
    callers = {f"+9195{i:08d}": 1 + i % 3 for i in range(CALLERS)}  # 1, 2 or 3 calls each
    calls = [
        {
            "AccountSid": ACCOUNT_SID,
            "CallSid": f"CA{len(callers) * n + i:032x}",
            "From": phone,
            "To": number,
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        for i, (phone, times) in enumerate(callers.items())
        for n in range(times)
    ]
    start_worker(beat=True, SMS_RATE_PER_SECOND="100")
    with served(DATABASE_URL, REDIS_URL, tmp_path, RELAY_NUDGE="true") as (base, _log):
        answers = deliver_at_once(base, calls)
        assert len(answers) == len(calls) * COPIES
        assert all(
            a.status_code == 200
            and a.headers["Content-Type"].startswith("text/xml")
            and b'<Reject reason="busy"' in a.content
            for a in answers
        )
        assert len({a.content for a in answers}) == 1  # the same answer, first copy or twentieth

        wait_for(
            lambda: count(Call, Call.state == CallState.DONE) == len(calls),
            90,
            "every call to be processed",
        )
        wait_for(
            lambda: count(Message, Message.status == MessageStatus.SENT) == CALLERS,
            90,
            "one onboarding SMS per caller",
        )
        time.sleep(3)  # more relay ticks: nothing may be sent again
        db.session.remove()
        sids = list(db.session.scalars(select(Call.provider_call_id)))
        assert sorted(sids) == sorted(c["CallSid"] for c in calls)  # one row per CallSid
        counts = {
            phone: calls
            for phone, calls in db.session.execute(select(Volunteer.phone, Volunteer.call_count))
        }
        assert counts == callers
        per_person = Counter(db.session.scalars(select(Message.to_phone)))
        assert per_person == Counter(dict.fromkeys(callers, 1))
        recipients = Counter(r.form["To"] for r in fake_twilio.sms_requests())
        assert recipients == Counter(dict.fromkeys(callers, 1))

        # Delivery reports: each arrives three times, in shuffled order, 16 at a time.
        sent = {
            phone: sid
            for phone, sid in db.session.execute(
                select(Message.to_phone, Message.provider_message_id)
            )
        }
        expected: dict[str, tuple[MessageStatus, int | None]] = {}
        reports: list[dict[str, str]] = []
        for index, (phone, sid) in enumerate(sorted(sent.items())):
            assert sid is not None
            if index % 2:
                steps = [("queued", ""), ("sent", ""), ("undelivered", "30005")]
                expected[phone] = (MessageStatus.UNDELIVERED, 30005)
            else:
                steps = [("queued", ""), ("sending", ""), ("sent", ""), ("delivered", "")]
                expected[phone] = (MessageStatus.DELIVERED, None)
            for value, code in steps * 3:
                report = {"AccountSid": ACCOUNT_SID, "MessageSid": sid, "MessageStatus": value}
                if code:
                    report["ErrorCode"] = code
                reports.append(report)
        random.Random(5).shuffle(reports)
        with ThreadPoolExecutor(16) as pool:
            statuses = list(
                pool.map(
                    lambda r: post(base, "/webhooks/twilio/message-status", r).status_code, reports
                )
            )
        assert statuses == [204] * len(reports)

    db.session.remove()
    final = {m.to_phone: (m.status, m.error_code) for m in db.session.scalars(select(Message))}
    assert final == expected
    assert len(fake_twilio.sms_requests()) == CALLERS  # no report caused a second send
