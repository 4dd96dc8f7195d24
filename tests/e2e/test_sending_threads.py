"""A threads-pool sending worker: every message sent exactly once, the rate limit held."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sqlalchemy import func, insert, select

from signup import clock
from signup.extensions import db
from signup.messaging import texts
from signup.messaging.models import Message, MessageKind, MessageStatus
from signup.messaging.tasks import chunks, send_message, send_messages
from signup.tasking import publish
from signup.volunteers.models import Subscription, Volunteer
from tests.e2e.conftest import Worker, wait_for
from tests.fakes.slow_twilio import SlowTwilio, max_in_window
from tests.integration.factories import campaign

pytestmark = pytest.mark.e2e
MESSAGES = 90
RATE = 20  # per second, for the one provider account, across both worker processes


@pytest.fixture
def slow_twilio() -> Iterator[SlowTwilio]:
    """A fake Twilio answering after 100 ms, on persistent connections."""
    fake = SlowTwilio(latency=0.1)
    fake.base_url = fake.start()  # type: ignore[attr-defined]
    yield fake
    fake.stop()


def queued_messages(count: int) -> list[int]:
    """A campaign, `count` volunteers and one queued onboarding SMS each, committed."""
    jan = campaign()
    db.session.flush()
    now = clock.now()
    phones = [f"+91990000{n:04d}" for n in range(count)]
    volunteer_ids = db.session.scalars(
        insert(Volunteer).returning(Volunteer.id), [{"phone": p, "call_count": 1} for p in phones]
    ).all()
    db.session.execute(  # subscribed: a message for someone who left is never sent
        insert(Subscription),
        [{"volunteer_id": v, "campaign_id": jan.id, "joined_at": now} for v in volunteer_ids],
    )
    body = texts.render(MessageKind.ONBOARDING, jan)
    rows = [
        {
            "volunteer_id": volunteer_id,
            "campaign_id": jan.id,
            "kind": MessageKind.ONBOARDING,
            "to_phone": phone,
            "body": body,
            "status": MessageStatus.QUEUED,
            "queued_at": now,
        }
        for volunteer_id, phone in zip(volunteer_ids, phones, strict=True)
    ]
    ids = list(db.session.scalars(insert(Message).returning(Message.id), rows).all())
    db.session.commit()
    return ids


def sent() -> tuple[int, int]:
    db.session.remove()
    row = db.session.execute(
        select(func.count(), func.count(func.distinct(Message.provider_message_id))).where(
            Message.status == MessageStatus.SENT
        )
    ).one()
    return int(row[0]), int(row[1])


@pytest.mark.parametrize("batched", [False, True], ids=["send_message", "send_messages"])
def test_threads_workers_send_each_message_once_within_the_rate(
    committed: Flask, start_worker: Callable[..., Worker], slow_twilio: SlowTwilio, batched: bool
) -> None:
    ids = queued_messages(MESSAGES)
    settings = {
        "TWILIO_API_BASE_URL": slow_twilio.base_url,  # type: ignore[attr-defined]
        "SMS_RATE_PER_SECOND": str(RATE),
        "SMS_RATE_BURST": "1",
    }
    # Beat (in the first) republishes what waited too long for a slot and went back to pending.
    workers = [
        start_worker(
            beat=index == 0, pool="threads", concurrency=8, queues=("sending",), **settings
        )
        for index in range(2)
    ]
    if batched:  # every batch delivered twice, as a broker may; more than the rate allows
        for (batch,) in chunks(ids, 15) * 2:
            assert publish(send_messages, batch)
    else:
        for message_id in ids + ids:  # every task delivered twice, as a broker may
            assert publish(send_message, message_id)
    wait_for(lambda: sent()[0] == MESSAGES, timeout=120, what="every message sent")
    wait_for(lambda: not slow_twilio.in_flight, timeout=10, what="quiet")

    arrivals = slow_twilio.snapshot()
    assert Counter(to for _, to in arrivals) == Counter(
        f"+91990000{n:04d}" for n in range(MESSAGES)
    ), "each recipient exactly once"
    assert sent() == (MESSAGES, MESSAGES)  # each with its own provider SID: no crossed answers
    # Reservations are spaced 1/RATE apart (burst 1); arrivals may jitter across a boundary.
    assert max_in_window([at for at, _ in arrivals]) <= RATE + 2
    assert slow_twilio.max_in_flight > 1  # sends did overlap: the threads waited concurrently
    for worker in workers:
        assert "Traceback" not in worker.output()
