"""A real gunicorn serving the app for the fault tests, and a client that rings it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import requests
from twilio.request_validator import RequestValidator

from tests.e2e.conftest import ROOT, wait_for
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(
    database_url: str, redis_url: str, folder: Path, **settings: str
) -> Iterator[tuple[str, Path]]:
    """gunicorn as deployed (2 gevent workers) on a free port; yields its URL and its log."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SIGNUP_ENV": "production",
        "SECRET_KEY": "faults",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": base,
        "SIGNUP_INSTANCE_PATH": str(folder / "web"),
        "LOG_FORMAT": "json",
        **settings,
    }
    log = folder / "gunicorn.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "2",
            "-k",
            "gevent",
            "--worker-connections",
            "1000",
            "--bind",
            f"127.0.0.1:{port}",
            "signup:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 60, "gunicorn")
        yield base, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def ring_all(base: str, calls: list[tuple[str, str]], number: str) -> list[tuple[int, float]]:
    """Post signed incoming-call webhooks, 16 at a time; (200 or the status, seconds) each."""
    validator = RequestValidator(AUTH_TOKEN)
    url = base + "/webhooks/twilio/voice"

    def ring(call: tuple[str, str]) -> tuple[int, float]:
        sid, caller = call
        params = {
            "AccountSid": ACCOUNT_SID,
            "CallSid": sid,
            "From": caller,
            "To": number,
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        started = time.monotonic()
        response = requests.post(
            url,
            data=params,
            timeout=15,
            headers={"X-Twilio-Signature": validator.compute_signature(url, params)},
        )
        ok = response.status_code == 200 and b'<Reject reason="busy"' in response.content
        return (200 if ok else response.status_code), time.monotonic() - started

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(ring, calls))
