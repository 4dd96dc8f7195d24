"""With BROKER_URL pointing at RabbitMQ, calls flow through it exactly as through Redis."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from signup.calls.models import Call, CallState
from signup.extensions import db
from signup.messaging.models import Message, MessageStatus
from tests.e2e.conftest import Worker, wait_for
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import call_params, post_signed
from tests.integration.factories import campaign

pytestmark = pytest.mark.e2e
AMQP = ("127.0.0.1", 5672)
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _rabbitmq_up() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(AMQP) == 0


def count(model: Any, *where: object) -> int:
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


@pytest.mark.skipif(not _rabbitmq_up(), reason="RabbitMQ is not running on 127.0.0.1:5672")
def test_calls_and_sms_flow_through_rabbitmq(
    committed: Flask, start_worker: Callable[..., Worker], fake_twilio: FakeTwilio
) -> None:
    number = campaign().number
    db.session.commit()
    client = committed.test_client()
    callers = [f"+9199112{n:05d}" for n in range(20)]
    for index, caller in enumerate(callers * 2):  # everyone calls twice
        response = post_signed(
            client, "/webhooks/twilio/voice", call_params(f"CA{index:032x}", caller, number)
        )
        assert response.status_code == 200
    worker = start_worker(beat=True, BROKER_URL=BROKER_URL)
    wait_for(lambda: count(Call, Call.state == CallState.DONE) == 40, what="every call processed")
    wait_for(lambda: len(fake_twilio.sms_requests()) == 20, timeout=60, what="one SMS per person")
    # The fake counts a request when it arrives; the worker records the answer a moment later.
    sent = Message.status == MessageStatus.SENT
    wait_for(lambda: count(Message, sent) == 20, timeout=30, what="every SMS recorded as sent")
    assert sorted(r.form["To"] for r in fake_twilio.sms_requests()) == sorted(callers)
    assert "amqp://guest:**@127.0.0.1:5672//" in worker.output()  # it really used RabbitMQ
