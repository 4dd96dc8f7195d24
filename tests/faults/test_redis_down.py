"""Redis stopped for real during a burst: gunicorn keeps answering Reject, every call is
recorded, and once Redis is back every call is processed exactly once."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from signup.calls.models import Call, CallState
from signup.extensions import db
from signup.messaging.models import Message, MessageStatus
from signup.volunteers.models import Volunteer
from tests.e2e.conftest import ROOT, Worker, wait_for
from tests.fakes.twilio_api import FakeTwilio
from tests.faults.web import free_port, ring_all, served
from tests.helpers import DATABASE_URL
from tests.integration.factories import campaign

pytestmark = pytest.mark.e2e


class PrivateRedis:
    """A redis-server of our own, to stop and start without touching anyone else's."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(
            lambda: socket.socket().connect_ex(("127.0.0.1", self.port)) == 0, 20, "redis to listen"
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gunicorn(committed: Flask, private_redis: PrivateRedis, tmp_path: Path) -> Iterator[str]:
    with served(DATABASE_URL, private_redis.url, tmp_path, RELAY_NUDGE="true") as (base, _log):
        yield base


def start_beat(redis_url: str) -> subprocess.Popen[bytes]:
    """celery beat in its own process, as docker-compose runs it."""
    schedule = Path(os.environ.get("TMPDIR", "/tmp")) / f"beat-{os.getpid()}-{time.time_ns()}"
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": redis_url,
        "SIGNUP_ENV": "production",
        "SECRET_KEY": "faults",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers",
            "beat",
            "-s",
            str(schedule),
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def count(model: Any, *where: Any) -> int:
    db.session.remove()
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_redis_down_during_a_burst(
    committed: Flask,
    private_redis: PrivateRedis,
    gunicorn: str,
    start_worker: Callable[..., Worker],
    fake_twilio: FakeTwilio,
) -> None:
    number = campaign().number
    db.session.commit()
    settings = {"REDIS_URL": private_redis.url, "FLOOD_CALLS_PER_HOUR": "0"}
    # As in docker-compose: beat in its own process. (With -B, a worker whose consumer died
    # can linger half-alive, and no restart policy would replace it.)
    worker = start_worker(beat=False, **settings)
    beat = start_beat(private_redis.url)
    private_redis.stop()  # Redis goes away just before the poster goes up
    callers = [f"+9196{i:08d}" for i in range(100)]
    burst = [(f"CA{i:032x}", callers[i % 100]) for i in range(300)]
    answers = ring_all(gunicorn, burst, number)
    assert [status for status, _ in answers] == [200] * 300
    assert max(seconds for _, seconds in answers) < 5  # far inside Twilio's 15 s deadline
    assert count(Call) == 300  # every call recorded while the broker was down
    assert count(Call, Call.state == CallState.DONE) == 0

    private_redis.start()  # back, empty (it kept nothing on disk)
    # Celery can exit when its broker vanishes (a known kombu reconnection bug); production
    # runs workers under a restart policy (docker-compose: restart: unless-stopped).
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.process.wait(timeout=10)
    if worker.process.poll() is not None:
        start_worker(beat=False, **settings)
    wait_for(
        lambda: count(Call, Call.state == CallState.DONE) == 300,
        120,
        "every call to be processed once Redis is back",
    )
    wait_for(
        lambda: count(Message, Message.status == MessageStatus.SENT) == 100,
        120,
        "one onboarding SMS per caller",
    )
    time.sleep(3)
    db.session.remove()
    assert set(db.session.scalars(select(Volunteer.call_count))) == {3}
    recipients = [r.form["To"] for r in fake_twilio.sms_requests()]
    assert sorted(recipients) == sorted(callers)
    beat.terminate()
    beat.wait(timeout=20)
