"""The webhook's group commit: concurrent calls share one INSERT, each gets its own result,
a failure spools every call it touched, and a forked process writes on its own connection."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from signup import clock, create_app
from signup.calls import services
from signup.calls.models import Call
from signup.calls.providers.base import InboundCall
from signup.calls.spool import REDIS_KEY
from signup.calls.writer import CallNotRecordedError, CallWriter, connect
from signup.extensions import db
from tests.helpers import base_config, call_params, post_signed, twilio_sid
from tests.integration.factories import NUMBER

PATH = "/webhooks/twilio/voice"
CONNECT_ARGS = {"application_name": "missed-call-signup"}


def row(sid: str, caller: str = "+919911278181", **changes: Any) -> dict[str, Any]:
    """The calls row the webhook would record for this CallSid."""
    inbound = InboundCall("twilio", sid, caller, NUMBER)
    return {**services.call_row(inbound, clock.now()), **changes}


def rows() -> int:
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(Call)) or 0


class Gate:
    """Holds the first batch until every other row has queued, so that batching is certain."""

    def __init__(self, writer: CallWriter, total: int) -> None:
        self.sizes: list[int] = []
        self._write = writer._write
        self._writer = writer
        self._total = total
        writer._write = self  # type: ignore[method-assign]

    def __call__(self, batch: list[Any]) -> None:
        if not self.sizes:
            waited = 0
            while len(self._writer._pending) < self._total - len(batch) and waited < 2000:
                threading.Event().wait(0.005)
                waited += 1
        self.sizes.append(len(batch))
        self._write(batch)


@pytest.fixture
def writer(committed: Flask) -> Iterator[CallWriter]:
    """A writer on the committed test database, as create_app builds it for production."""
    yield CallWriter(
        partial(connect, db.engine.url, CONNECT_ARGS), services.INSERT_COLUMNS, timeout=10
    )


def record_all(writer: CallWriter, batch: list[dict[str, Any]]) -> list[bool | Exception]:
    """Record every row from its own thread at once; each thread's result or error."""
    results: list[bool | Exception] = [False] * len(batch)

    def one(index: int) -> None:
        try:
            results[index] = writer.record(batch[index])
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(batch))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_calls_share_an_insert_and_each_gets_its_own_result(
    writer: CallWriter,
) -> None:
    writer.record(row("CA-known"))  # committed earlier: a Twilio retry of it is a duplicate
    batch = [row(f"CA{i}", f"+91991127818{i}") for i in range(5)]
    batch += [row("CA0"), row("CA-known")]  # the same call twice at once, and a retry
    gate = Gate(writer, len(batch))
    results = record_all(writer, batch)
    assert len(gate.sizes) == 2 and sum(gate.sizes) == 7  # the leader's batch, then the rest
    assert results[1:5] == [True] * 4
    assert sorted([results[0], results[5]]) == [False, True]  # one CA0 created, one duplicate
    assert results[6] is False
    assert rows() == 6


def test_the_first_of_two_simultaneous_deliveries_owns_the_call(writer: CallWriter) -> None:
    gate = Gate(writer, 3)
    results = record_all(writer, [row("CA-first"), row("CA-same"), row("CA-same")])
    assert sorted([results[1], results[2]]) == [False, True]  # exactly one of the twins
    assert results[0] is True and rows() == 2 and sum(gate.sizes) == 3


def test_a_database_error_fails_every_call_of_the_batch(writer: CallWriter) -> None:
    writer.record(row("CA-warm"))

    def refused(_batch: list[dict[str, Any]]) -> set[tuple[str, str]]:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    writer._insert = refused  # type: ignore[method-assign]
    results = record_all(writer, [row(f"CA-x{i}") for i in range(4)])
    assert all(isinstance(r, CallNotRecordedError) for r in results)
    assert rows() == 1


def test_an_odd_row_fails_alone(writer: CallWriter) -> None:
    Gate(writer, 4)
    odd = row("CA-odd", caller_kind="x" * 40)  # longer than the column: PostgreSQL refuses it
    results = record_all(writer, [row("CA-lead"), row("CA-a"), odd, row("CA-b")])
    assert results[0] is True and results[1] is True and results[3] is True
    assert isinstance(results[2], CallNotRecordedError)
    assert rows() == 3


def test_a_request_stuck_behind_a_hung_database_gives_up(committed: Flask) -> None:
    writer = CallWriter(
        partial(connect, db.engine.url, CONNECT_ARGS), services.INSERT_COLUMNS, timeout=0.3
    )
    release = threading.Event()
    insert = writer._insert

    def hung(batch: list[dict[str, Any]]) -> set[tuple[str, str]]:
        release.wait(10)
        return insert(batch)

    writer._insert = hung  # type: ignore[method-assign]
    leader = threading.Thread(target=writer.record, args=(row("CA-leader"),))
    leader.start()
    try:
        with pytest.raises(CallNotRecordedError):
            writer.record(row("CA-follower"))
    finally:
        release.set()
        leader.join(10)
    assert rows() == 1  # the leader's; the follower's call is the spool's now
    assert writer.record(row("CA-after")) is True  # the lead moved on


def test_a_forked_process_writes_on_its_own_connection(writer: CallWriter) -> None:
    assert writer.record(row("CA-parent"))
    parent_backend = writer._connection().info.backend_pid
    pid = os.fork()
    if pid == 0:  # the child: a gunicorn worker forked after the writer was used
        status = 1
        try:
            created = writer.record(row("CA-child"))
            if created and writer._connection().info.backend_pid != parent_backend:
                status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert writer.record(row("CA-parent-again"))  # the parent's connection still works
    assert writer._connection().info.backend_pid == parent_backend
    assert rows() == 3


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_webhook_counts_its_outcomes(committed: Flask) -> None:
    app = create_app(base_config(WEBHOOK_AUTOCOMMIT=True))
    assert app.extensions["call_writer"] is not None
    client = app.test_client()
    before = {
        outcome: sample("signup_webhook_calls_total", provider="twilio", outcome=outcome)
        for outcome in ("recorded", "duplicate", "forbidden", "malformed")
    }
    timed = sample("signup_webhook_seconds_count", provider="twilio")
    params = call_params(twilio_sid("CA-m"), "+919911278181", NUMBER)
    assert post_signed(client, PATH, params).status_code == 200
    assert post_signed(client, PATH, params).status_code == 200
    assert client.post(PATH, data=params).status_code == 403
    assert post_signed(client, PATH, {**params, "CallSid": "CA-m"}).status_code == 400
    for outcome in ("recorded", "duplicate", "forbidden", "malformed"):
        counted = sample("signup_webhook_calls_total", provider="twilio", outcome=outcome)
        assert counted == before[outcome] + 1
    assert sample("signup_webhook_seconds_count", provider="twilio") == timed + 4
    assert rows() == 1


def test_the_webhook_spools_when_the_writer_cannot_connect(
    committed: Flask, redis_client: redis.Redis
) -> None:
    app = create_app(base_config(WEBHOOK_AUTOCOMMIT=True))
    writer: CallWriter = app.extensions["call_writer"]

    def refused() -> psycopg.Connection[Any]:
        raise psycopg.OperationalError("connection refused")

    writer._connect = refused
    spooled = sample("signup_webhook_calls_total", provider="twilio", outcome="spooled")
    client = app.test_client()
    try:
        for sid in (twilio_sid("CA-s1"), twilio_sid("CA-s2")):
            response = post_signed(client, PATH, call_params(sid, "+919911278181", NUMBER))
            assert response.status_code == 200 and b"Reject" in response.data
        assert rows() == 0
        assert redis_client.llen(REDIS_KEY) == 2  # each call kept for the replay
    finally:
        redis_client.delete(REDIS_KEY)
    assert sample("signup_webhook_calls_total", provider="twilio", outcome="spooled") == spooled + 2


GEVENT_SCRIPT = """
from gevent import monkey

monkey.patch_all()

import json
import sys
from functools import partial

import gevent
from sqlalchemy.engine import make_url

from signup import clock
from signup.calls import services
from signup.calls.providers.base import InboundCall
from signup.calls.writer import CallWriter, connect

writer = CallWriter(partial(connect, make_url(sys.argv[1]), {}), services.INSERT_COLUMNS)
warm = InboundCall("twilio", "CA-warm", "+919911278181", "+918047259725")
writer.record(services.call_row(warm, clock.now()))  # connected: only the INSERT can yield now
sizes = []
write = writer._write
writer._write = lambda batch: (sizes.append(len(batch)), write(batch))[1]


def one(i):
    inbound = InboundCall("twilio", f"CA-g{i % 40}", "+919911278181", "+918047259725")
    return writer.record(services.call_row(inbound, clock.now()))


jobs = [gevent.spawn(one, i) for i in range(50)]
gevent.joinall(jobs, timeout=30)
print(json.dumps({"results": [job.value for job in jobs], "sizes": sizes}))
"""


def test_under_gevent_one_thread_still_batches_and_never_blocks(committed: Flask) -> None:
    """gunicorn's gevent worker: the leader's round trip yields, so the others join the batch.

    With libpq's blocking call every greenlet would write alone, one after another.
    """
    import json
    import subprocess
    import sys

    url = db.engine.url.render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, "-c", GEVENT_SCRIPT, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["results"].count(True) == 40 and report["results"].count(False) == 10
    assert sum(report["sizes"]) == 50 and len(report["sizes"]) <= 3, report["sizes"]
    assert rows() == 41
