"""End to end: signed webhooks -> real Celery workers -> PostgreSQL rows -> fake Twilio SMS."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from signup import create_app
from signup.calls.models import Call, CallState
from signup.extensions import db
from signup.messaging.models import Message
from signup.volunteers.models import ConsentEvent, Volunteer
from tests.e2e.conftest import Worker, wait_for
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import ACCOUNT_SID, PUBLIC_BASE_URL, base_config, call_params, post_signed
from tests.integration.factories import campaign

pytestmark = pytest.mark.e2e
VOICE = "/webhooks/twilio/voice"
A, B, C = "+919911278181", "+919911278182", "+912261550789"


def count(model: Any, *where: Any) -> int:
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def all_processed() -> bool:
    return count(Call, Call.state.in_([CallState.PENDING, CallState.QUEUED])) == 0


def ring(app: Flask, sid: str, from_: str, to: str) -> None:
    response = post_signed(app.test_client(), VOICE, call_params(sid, from_, to))
    assert response.status_code == 200 and b"Reject" in response.data


def test_missed_calls_become_volunteers_with_exactly_one_sms_each(
    committed: Flask, start_worker: Callable[..., Worker], fake_twilio: FakeTwilio
) -> None:
    app = committed
    jan = campaign()
    db.session.commit()
    number, optout = jan.number, jan.optout_number or ""
    worker = start_worker(beat=True)

    ring(app, "CA" + "1" * 32, "099112 78181", number)
    ring(app, "CA" + "1" * 32, "099112 78181", number)  # Twilio retried the webhook
    ring(app, "CA" + "2" * 32, "+91 99112 78181", number)
    ring(app, "CA" + "3" * 32, "919911278181", number)
    ring(app, "CA" + "4" * 32, "9911278182", number)
    ring(app, "CA" + "5" * 32, "anonymous", number)
    ring(app, "CA" + "6" * 32, "022 6155 0789", number)  # a landline: no SMS
    ring(app, "CA" + "7" * 32, "9911278183", "+918000000000")  # nobody's number
    wait_for(
        lambda: all_processed() and count(Message, Message.status == "sent") == 2,
        what="calls processed and onboarding sent",
    )

    assert count(Call) == 7
    volunteers = {v.phone: v for v in db.session.scalars(select(Volunteer))}
    assert set(volunteers) == {A, B, C}
    assert volunteers[A].call_count == 3 and volunteers[B].call_count == 1
    assert count(ConsentEvent) == 3

    ring(app, "CA" + "8" * 32, A, optout)
    wait_for(
        lambda: all_processed() and count(Message, Message.status == "sent") == 3,
        what="opt-out confirmation sent",
    )
    time.sleep(2)  # a few more relay ticks: nothing else may go out

    db.session.remove()
    assert db.session.scalar(select(Volunteer.status).where(Volunteer.phone == A)) == "opted_out"
    requests = fake_twilio.sms_requests()
    assert sorted(r.form["To"] for r in requests[:2]) == [A, B]  # onboarding, either order
    assert requests[2].form["To"] == A  # then the opt-out confirmation
    assert {r.path for r in requests} == {f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"}
    messages = {(m.to_phone, m.kind): m for m in db.session.scalars(select(Message))}
    for request in requests:
        kind = "optout_confirmation" if "left" in request.form["Body"] else "onboarding"
        message = messages[(request.form["To"], kind)]
        assert request.form == {
            "To": message.to_phone,
            "From": "+15005550006",
            "Body": message.body,
            "StatusCallback": f"{PUBLIC_BASE_URL}/webhooks/twilio/message-status",
        }
        assert message.provider_message_id is not None
    assert "Jan Seva Abhiyan" in messages[(A, "onboarding")].body
    assert len(requests) == 3
    log = worker.output()
    assert "sms.sent" in log
    for phone in (A, B, C):
        assert phone[3:] not in log, f"full number {phone} in the worker's log"


def test_the_nudge_alone_relays_calls_without_beat(
    committed: Flask, start_worker: Callable[..., Worker], fake_twilio: FakeTwilio
) -> None:
    jan = campaign()
    db.session.commit()
    number = jan.number
    start_worker(beat=False)
    nudging = create_app(base_config(RELAY_NUDGE=True))
    ring(nudging, "CA" + "9" * 32, A, number)
    wait_for(
        lambda: count(Message, Message.status == "sent") == 1,
        timeout=30,
        what="the nudge to relay the call",
    )
    assert [r.form["To"] for r in fake_twilio.sms_requests()] == [A]


def test_concurrent_duplicate_processing_applies_each_call_once(
    committed: Flask, start_worker: Callable[..., Worker], fake_twilio: FakeTwilio
) -> None:
    app = committed
    jan = campaign()
    db.session.commit()
    number = jan.number
    for i in range(20):
        ring(app, f"CA{i:032x}", A, number)
    ids = list(db.session.scalars(select(Call.id).order_by(Call.id)))
    celery = app.extensions["celery"]
    start_worker(beat=False, concurrency=4, FLOOD_CALLS_PER_HOUR="0")  # one caller, 20 calls
    for _ in range(6):  # the same calls delivered many times, in parallel
        celery.send_task("signup.calls.tasks.process_calls", args=[ids])
        celery.send_task("signup.calls.tasks.process_calls", args=[list(reversed(ids))])
    wait_for(
        lambda: all_processed() and count(Message, Message.status == "sent") == 1,
        what="duplicate deliveries processed",
    )
    time.sleep(1)
    db.session.remove()
    volunteer = db.session.scalar(select(Volunteer))
    assert volunteer is not None and volunteer.call_count == 20
    assert count(ConsentEvent) == 1
    assert count(Message) == 1
    assert len(fake_twilio.sms_requests()) == 1


def test_webhook_answers_and_records_while_the_broker_is_down(committed: Flask) -> None:
    jan = campaign()
    db.session.commit()
    number = jan.number
    down = create_app(base_config(RELAY_NUDGE=True, REDIS_URL="redis://127.0.0.1:1/0"))
    for i in range(10):
        ring(down, f"CAb{i:031x}", A, number)
    assert count(Call, Call.state == CallState.PENDING) == 10


def test_relay_puts_calls_back_when_the_broker_is_down(committed: Flask) -> None:
    jan = campaign()
    db.session.commit()
    number = jan.number
    for i in range(3):
        ring(committed, f"CAc{i:031x}", A, number)
    down = create_app(base_config(REDIS_URL="redis://127.0.0.1:1/0"))
    with down.app_context():
        relay = down.extensions["celery"].tasks["signup.calls.tasks.relay_calls"]
        assert relay.run() == 3  # claimed, but nothing could be published
    assert count(Call, Call.state == CallState.PENDING) == 3
    assert count(Call, Call.state == CallState.QUEUED) == 0
