"""The README's quick start, literally: embedded SQLite and broker, `signup serve --demo`."""

from __future__ import annotations

import csv
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, wait_for

pytestmark = pytest.mark.e2e
SIGNUP = str(Path(sys.executable).with_name("signup"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signup(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SIGNUP, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_embedded_defaults_turn_a_simulated_call_into_a_volunteer(tmp_path: Path) -> None:
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
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [SIGNUP, "serve", "--demo", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_for(up, timeout=60, what="signup serve to listen")
        time.sleep(1)  # the worker starts beside the web server
        call = signup(env, "simulate-call", "+91 99112 78181", "--url", url)
        assert call.returncode == 0, call.stderr
        assert '<Reject reason="busy"' in call.stdout

        def volunteer_rows() -> list[dict[str, str]]:
            out = signup(env, "export", "volunteers", "--output", "-").stdout
            return list(csv.DictReader(io.StringIO(out.lstrip("\ufeff"))))

        wait_for(lambda: len(volunteer_rows()) == 1, timeout=60, what="the volunteer")
        [row] = volunteer_rows()
        assert (row["phone"], row["status"], row["campaigns"]) == (
            "+919911278181",
            "active",
            "demo",
        )
        output = tmp_path / "serve.log"
        wait_for(
            lambda: b"sms.console" in output.read_bytes(),
            timeout=60,
            what="the onboarding SMS to be printed",
        )
        text = output.read_text(errors="replace")
        assert "Demo Abhiyan" in text and "+91 99XXX XX181" in text
        events = [line for line in text.splitlines() if " signup." in line]
        assert events and not [line for line in events if "9911278181" in line]
    finally:
        server.terminate()
        server.wait(timeout=20)
    # Stopping `signup serve` stops its worker too: no celery process is left behind.
    time.sleep(1)
    workers = subprocess.run(
        ["pgrep", "-f", "celery -A workers worker -B --pool=solo"], capture_output=True, text=True
    )
    assert not workers.stdout.strip(), "signup serve left its worker running"
