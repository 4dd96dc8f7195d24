"""Real Celery worker processes against the test PostgreSQL and Redis, and a fake Twilio."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from signup.tasking import QUEUES
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, DATABASE_URL, PUBLIC_BASE_URL, REDIS_URL

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """A `celery -A workers worker` subprocess with its log in a file."""

    def __init__(self, log: Path, process: subprocess.Popen[bytes]) -> None:
        self.log = log
        self.process = process

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crashed machine would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def start_worker(
    committed: object, fake_twilio: FakeTwilio, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    """Start workers (optionally with embedded beat), on every queue unless told; all are
    stopped after the test."""
    redis_client.flushdb()
    workers: list[Worker] = []

    def start(
        *,
        beat: bool = True,
        concurrency: int = 2,
        pool: str = "prefork",
        queues: tuple[str, ...] = QUEUES,
        **settings: str,
    ) -> Worker:
        env = {
            **os.environ,
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": REDIS_URL,
            "SIGNUP_ENV": "production",
            "SECRET_KEY": "e2e-secret",
            "SMS_PROVIDER": "twilio",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": "+15005550006",
            "TWILIO_API_BASE_URL": fake_twilio.base_url,  # type: ignore[attr-defined]
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "SIGNUP_INSTANCE_PATH": str(tmp_path / "instance"),
            "LOG_FORMAT": "json",
            "SMS_QUIET_HOURS": "off",
            **settings,
        }
        index = len(workers)
        log = tmp_path / f"worker-{index}.log"
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--queues={','.join(queues)}",
            "-n",
            f"e2e{index}@%h",
        ]
        if beat:
            args += ["-B", "-s", str(tmp_path / f"beat-{index}")]
        handle = log.open("wb")
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        worker = Worker(log, process)
        workers.append(worker)
        deadline = time.monotonic() + 60
        while "ready." not in worker.output():
            if process.poll() is not None or time.monotonic() > deadline:
                worker.stop()
                pytest.fail("worker did not start:\n" + worker.output()[-4000:])
            time.sleep(0.2)
        return worker

    yield start
    for worker in workers:
        worker.stop()
    redis_client.flushdb()


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Poll until condition() is true, or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition.__name__}")
        time.sleep(0.2)
