"""The README's quick start, literally: embedded SQLite and broker, `signup serve --demo`."""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from twilio.request_validator import RequestValidator

from signup.config import DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN
from signup.dev import DEMO_NUMBER, twilio_call_params
from tests.e2e.conftest import ROOT, wait_for

pytestmark = pytest.mark.e2e
SIGNUP = str(Path(sys.executable).with_name("signup"))
# How long the embedded processes run under a trickle of calls. kombu's own file-system
# transport killed the worker after about five minutes of this, but not reliably within any
# length a suite can afford: tests/unit/test_devbroker.py is the test that fails on it.
TRICKLE_SECONDS = float(os.environ.get("SIGNUP_TRICKLE_SECONDS", "150"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """A running `signup serve --demo` with its environment and combined log."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]
    url: str
    log: Path

    def signup(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SIGNUP, *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def volunteer_rows(self) -> list[dict[str, str]]:
        out = self.signup("export", "volunteers", "--output", "-").stdout
        return list(csv.DictReader(io.StringIO(out.lstrip("\ufeff"))))

    def worker_pids(self) -> list[int]:
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        )
        return [int(pid) for pid in found.stdout.split()]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "SECRET_KEY",
            "SIGNUP_ENV",
            "SMS_PROVIDER",
            "TWILIO_AUTH_TOKEN",
            "TWILIO_ACCOUNT_SID",
            "PUBLIC_BASE_URL",
        }
    }
    env["SIGNUP_INSTANCE_PATH"] = str(tmp_path / "instance")
    env["SMS_QUIET_HOURS"] = "off"  # so the SMS is printed whatever the hour
    port = free_port()
    log = tmp_path / "serve.log"
    process = subprocess.Popen(
        [SIGNUP, "serve", "--demo", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:

        def up() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_for(up, timeout=60, what="signup serve to listen")
        time.sleep(1)  # the worker starts beside the web server
        yield Served(process, env, f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_embedded_defaults_turn_a_simulated_call_into_a_volunteer(served: Served) -> None:
    call = served.signup("simulate-call", "+91 99112 78181", "--url", served.url)
    assert call.returncode == 0, call.stderr
    assert '<Reject reason="busy"' in call.stdout
    wait_for(lambda: len(served.volunteer_rows()) == 1, timeout=60, what="the volunteer")
    [row] = served.volunteer_rows()
    assert (row["phone"], row["status"], row["campaigns"]) == ("+919911278181", "active", "demo")
    wait_for(
        lambda: "sms.console" in served.output(),
        timeout=60,
        what="the onboarding SMS to be printed",
    )
    text = served.output()
    assert "Demo Abhiyan" in text and "+91 99XXX XX181" in text
    events = [line for line in text.splitlines() if " signup." in line]
    assert events and not [line for line in events if "9911278181" in line]
    workers = served.worker_pids()
    assert workers
    served.process.terminate()
    served.process.wait(timeout=20)
    # Stopping `signup serve` stops its worker too: no celery process is left behind.
    time.sleep(1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "worker left running"


def _post_call(url: str, caller: str) -> int:
    """A signed incoming-call webhook, as `signup simulate-call` posts it."""
    path = "/webhooks/twilio/voice"
    params = twilio_call_params(caller, DEMO_NUMBER, DEV_TWILIO_ACCOUNT_SID)
    signature = RequestValidator(DEV_TWILIO_AUTH_TOKEN).compute_signature(url + path, params)
    response = requests.post(
        url + path, data=params, headers={"X-Twilio-Signature": signature}, timeout=10
    )
    return response.status_code


def test_a_dead_worker_is_restarted_loudly_and_calls_go_on(served: Served) -> None:
    [worker] = served.worker_pids()
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: "serve.worker_died" in served.output(), timeout=30, what="the death logged")
    wait_for(lambda: len(served.worker_pids()) == 1, timeout=30, what="a new worker")
    assert served.worker_pids() != [worker]
    assert _post_call(served.url, "9911278182") == 200
    wait_for(lambda: len(served.volunteer_rows()) == 1, timeout=60, what="the volunteer")
    assert served.process.poll() is None


def test_embedded_processes_keep_running_under_a_trickle_from_several_publishers(
    served: Served,
) -> None:
    """Web, beat and worker all publish to the embedded broker for minutes: nothing is lost."""
    callers: list[str] = []
    failures: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + TRICKLE_SECONDS

    def publisher(offset: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            caller = f"+9198{offset}{n:07d}"
            status = _post_call(served.url, caller)
            with lock:
                (callers if status == 200 else failures).append(caller if status == 200 else status)
            n += 1
            time.sleep(0.3)

    threads = [threading.Thread(target=publisher, args=(offset,)) for offset in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and len(callers) > 100
    wait_for(
        lambda: len(served.volunteer_rows()) == len(callers),
        timeout=120,
        what="every call to become a volunteer",
    )
    assert {row["phone"] for row in served.volunteer_rows()} == set(callers)
    text = served.output()
    assert "serve.worker_died" not in text and "Unrecoverable error" not in text
    assert served.process.poll() is None
