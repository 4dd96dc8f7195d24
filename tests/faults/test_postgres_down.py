"""PostgreSQL gone during a burst: gunicorn keeps answering Reject within Twilio's deadline,
calls wait in the spool, and are recorded and processed exactly once when it returns."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from signup.calls.models import Call, CallState
from signup.calls.spool import REDIS_KEY
from signup.extensions import db
from signup.messaging.models import Message, MessageStatus
from signup.volunteers.models import Volunteer
from tests.e2e.conftest import Worker, wait_for
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.twilio_api import FakeTwilio
from tests.faults.web import ring_all, served
from tests.helpers import DATABASE_URL, REDIS_URL
from tests.integration.factories import campaign

pytestmark = pytest.mark.e2e


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    forwarder = TcpProxy(make_url(DATABASE_URL).port or 5432)
    forwarder.start()
    yield forwarder
    forwarder.stop()


@pytest.fixture
def web_behind_proxy(
    committed: Flask, proxy: TcpProxy, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    database = make_url(DATABASE_URL).set(port=proxy.port).render_as_string(hide_password=False)
    with served(database, REDIS_URL, tmp_path) as web:
        yield web


def count(model: Any, *where: Any) -> int:
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_postgres_down_during_a_burst(
    committed: Flask,
    proxy: TcpProxy,
    web_behind_proxy: tuple[str, Path],
    start_worker: Callable[..., Worker],
    fake_twilio: FakeTwilio,
    redis_client: redis.Redis,
) -> None:
    base, web_log = web_behind_proxy
    number = campaign().number
    db.session.commit()
    warm = ring_all(base, [("CA" + "f" * 32, "+919813000000")], number)
    assert [status for status, _ in warm] == [200]  # the pool now holds proxied connections
    proxy.stop()  # PostgreSQL goes away: open connections reset, new ones refused
    callers = [f"+9199120{i:05d}" for i in range(50)]
    burst = [(f"CA{i:032x}", callers[i % 50]) for i in range(150)]
    answers = ring_all(base, burst, number)
    assert [status for status, _ in answers] == [200] * 150  # still Reject: nobody billed
    assert max(seconds for _, seconds in answers) < 10  # inside Twilio's 15 s
    assert count(Call) == 1  # the database saw none of them...
    spooled_to_file = sum(
        len(f.read_text().splitlines()) for f in (web_log.parent / "web" / "spool").glob("calls-*")
    )
    assert redis_client.llen(REDIS_KEY) + spooled_to_file == 150  # ...every one is in a spool

    proxy.start()  # back
    start_worker(beat=True, FLOOD_CALLS_PER_HOUR="0")  # beat replays the spool every 5 s
    wait_for(
        lambda: count(Call, Call.state == CallState.DONE) == 151,
        120,
        "the spooled calls to be replayed and processed",
    )
    wait_for(
        lambda: count(Message, Message.status == MessageStatus.SENT) == 51,
        120,
        "one onboarding SMS per caller",
    )
    time.sleep(3)
    assert redis_client.llen(REDIS_KEY) == 0
    db.session.remove()
    counts = {v.phone: v.call_count for v in db.session.scalars(select(Volunteer))}
    assert counts == {**{c: 3 for c in callers}, "+919813000000": 1}
    assert len(fake_twilio.sms_requests()) == 51
    logged = web_log.read_text(errors="replace")
    assert "call.spooled" in logged
    assert not [c for c in callers if c[3:] in logged]  # no full number in the web's log
