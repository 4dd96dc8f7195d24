"""A worker killed with SIGKILL: no call left unprocessed, no message sent twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from signup.calls.models import Call, CallState
from signup.extensions import db
from signup.messaging.models import Message, MessageStatus
from signup.tasking import INTAKE
from signup.volunteers.models import Volunteer
from tests.e2e.conftest import Worker, wait_for
from tests.fakes.twilio_api import FakeTwilio, Scripted
from tests.helpers import call_params, post_signed
from tests.integration.factories import campaign

pytestmark = pytest.mark.e2e


def count(model: Any, *where: Any) -> int:
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_killed_mid_send_the_message_is_marked_for_review_not_resent(
    committed: Flask, start_worker: Callable[..., Worker], fake_twilio: FakeTwilio
) -> None:
    number = campaign().number
    db.session.commit()
    fake_twilio.script.append(Scripted(delay=8))  # the provider takes its time...
    settings = {"SMS_HTTP_TIMEOUT": "10", "SMS_SENDING_STALE_SECONDS": "12"}
    first = start_worker(beat=True, **settings)
    response = post_signed(
        committed.test_client(),
        "/webhooks/twilio/voice",
        call_params("CA" + "d" * 32, "+919911278181", number),
    )
    assert response.status_code == 200
    wait_for(lambda: len(fake_twilio.sms_requests()) == 1, what="the send to start")
    first.kill()  # ...and the worker dies while the request is in flight
    assert count(Message, Message.status == MessageStatus.SENDING) == 1
    start_worker(beat=True, **settings)
    wait_for(
        lambda: count(Message, Message.status == MessageStatus.UNKNOWN) == 1,
        timeout=60,
        what="the abandoned send to be marked unknown",
    )
    time.sleep(3)  # more relay ticks: nothing may send it again
    assert len(fake_twilio.sms_requests()) == 1


def test_killed_mid_processing_every_call_is_processed_exactly_once(
    committed: Flask, start_worker: Callable[..., Worker], fake_twilio: FakeTwilio
) -> None:
    number = campaign().number
    db.session.commit()
    client = committed.test_client()
    total = 300
    for i in range(total):
        post_signed(
            client, "/webhooks/twilio/voice", call_params(f"CA{i:032x}", f"+9198{i:08d}", number)
        )
    ids = list(db.session.scalars(select(Call.id).order_by(Call.id)))
    settings = {"RELAY_REQUEUE_AFTER": "3", "SMS_REQUEUE_AFTER": "3", "SMS_RATE_PER_SECOND": "200"}
    # Intake only: a kill during a send would rightly leave that SMS `unknown`, never re-sent,
    # which is the other test's subject; here every SMS is sent by the worker that follows.
    first = start_worker(beat=False, concurrency=1, queues=(INTAKE,), **settings)
    # Batches commit whole, so several small ones let the kill land between and inside them.
    for start in range(0, total, 25):
        committed.extensions["celery"].send_task(
            "signup.calls.tasks.process_calls", args=[ids[start : start + 25]]
        )
    wait_for(
        lambda: count(Call, Call.state == CallState.DONE) >= 50, what="processing to be under way"
    )
    first.kill()
    done_at_kill = count(Call, Call.state == CallState.DONE)
    assert done_at_kill < total, "the kill came too late to test anything"
    # The killed task is never acknowledged; the relay requeues what it left behind.
    db.session.execute(
        Call.__table__.update()
        .where(Call.state == CallState.PENDING)
        .values(state=CallState.QUEUED, queued_at=func.now())
    )
    db.session.commit()
    start_worker(beat=True, **settings)
    wait_for(
        lambda: count(Call, Call.state == CallState.DONE) == total,
        timeout=90,
        what="every call to be processed",
    )
    wait_for(
        lambda: count(Message, Message.status == MessageStatus.SENT) == total,
        timeout=90,
        what="every onboarding SMS to be sent",
    )
    time.sleep(2)
    db.session.remove()
    counts = set(db.session.scalars(select(Volunteer.call_count)))
    assert counts == {1} and count(Volunteer) == total
    recipients = [r.form["To"] for r in fake_twilio.sms_requests()]
    assert len(recipients) == len(set(recipients)) == total
