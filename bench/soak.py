"""Soak: many calls from many callers at a steady rate through gunicorn and Celery; then the call
log, each volunteer's call count and the SMS sent must match the input exactly.

    .venv/bin/python bench/soak.py                       # 100,000 calls, 30,000 callers
    .venv/bin/python bench/soak.py --calls 2000 --callers 600 --rate 200   # the CI form

Everything runs on 127.0.0.1 against local PostgreSQL and Redis; the run is bounded in count and
time and stops by itself. tests/faults/test_soak.py runs the short form in CI.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import redis
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.fakes.twilio_api import FakeTwilio  # noqa: E402 - a local fake of Twilio's API

NUMBER = "+918047259725"
TOKEN = "soak-auth-token"  # noqa: S105 - a local test value
SID = "AC" + "5" * 32


@dataclass
class Result:
    """What a soak run saw."""

    calls: int
    callers: int
    seconds_posting: float
    seconds_draining: float
    answered: int
    call_rows: int
    volunteers: int
    counts_match: bool
    sms_sent: int
    sms_requests: int
    duplicate_sms: int
    web_rss_mb: list[float] = field(default_factory=list)  # each gunicorn worker, after the run
    worker_rss_mb: list[float] = field(default_factory=list)  # the Celery worker and its pool

    @property
    def exact(self) -> bool:
        """True when nothing was lost or doubled."""
        return (
            self.answered == self.calls == self.call_rows
            and self.volunteers == self.callers
            and self.counts_match
            and self.sms_sent == self.sms_requests == self.callers
            and self.duplicate_sms == 0
        )


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(
    database_url: str, redis_url: str, fake_url: str, base: str, folder: Path
) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SIGNUP_ENV": "production",
        "SECRET_KEY": "soak",
        "SMS_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "TWILIO_API_BASE_URL": fake_url,
        "PUBLIC_BASE_URL": base,
        "SMS_QUIET_HOURS": "off",
        "FLOOD_CALLS_PER_HOUR": "0",
        "SMS_RATE_PER_SECOND": "2000",
        "LOG_LEVEL": "WARNING",
        "SIGNUP_INSTANCE_PATH": str(folder),
    }


def _post_all(base: str, plan: list[tuple[str, str]], rate: float, threads: int) -> int:
    """Post every (CallSid, caller) at a steady total rate; returns the Reject answers."""
    host, port = base.removeprefix("http://").split(":")
    validator = RequestValidator(TOKEN)
    url = base + "/webhooks/twilio/voice"
    answered = 0
    lock = threading.Lock()
    start = time.monotonic()
    local = threading.local()

    def post(index: int) -> None:
        nonlocal answered
        due = start + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sid, caller = plan[index]
        params = {
            "AccountSid": SID,
            "CallSid": sid,
            "From": caller,
            "To": NUMBER,
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        headers = {
            "X-Twilio-Signature": validator.compute_signature(url, params),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        for _ in range(3):
            try:
                if getattr(local, "conn", None) is None:
                    local.conn = http.client.HTTPConnection(host, int(port), timeout=30)
                local.conn.request("POST", "/webhooks/twilio/voice", urlencode(params), headers)
                response = local.conn.getresponse()
                body = response.read()
                break
            except (OSError, http.client.HTTPException):
                local.conn = None  # reconnect and send again: the CallSid makes it harmless
        else:
            return
        if response.status == 200 and b"Reject" in body:
            with lock:
                answered += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, range(len(plan))))
    return answered


def _rss_mb(pid: int) -> float:
    """Resident memory of one process in MB (0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) / 1024


def _children(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _wait(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.5)
    return False


def run(
    *,
    calls: int,
    callers: int,
    rate: float,
    database_url: str,
    redis_url: str,
    workers: int = 2,
    timeout: float = 900,
    folder: Path,
) -> Result:
    """Run one soak against an empty, migrated database; stops every process it started."""
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    rng = random.Random(7)
    people = [f"+9197{n:08d}" for n in rng.sample(range(10**8), callers)]
    plan = [(f"CA{i:032x}", people[i % callers]) for i in range(calls)]
    rng.shuffle(plan)
    expected = Counter(caller for _, caller in plan)
    fake = FakeTwilio()
    fake_url = fake.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(database_url, redis_url, fake_url, base, folder)
    redis.Redis.from_url(redis_url).flushdb()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "signup.cli",
            "campaign",
            "create",
            "--slug",
            "soak",
            "--name",
            "Soak",
            "--number",
            NUMBER,
        ],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    log = (folder / "processes.log").open("wb")
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                "2",
                "-k",
                "gevent",  # as deployed (docker-compose.yml)
                "--worker-connections",
                "1000",
                "--bind",
                f"127.0.0.1:{port}",
                "signup:create_app()",
            ],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers",
                "worker",
                "-B",
                f"--concurrency={workers}",
                "-s",
                str(folder / "beat"),
                "--loglevel=WARNING",
            ],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]
    try:
        up = _wait(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 60)
        if not up:
            raise RuntimeError("gunicorn did not start; see processes.log")
        began = time.monotonic()
        answered = _post_all(base, plan, rate, threads=16)
        posted = time.monotonic()

        def drained() -> bool:
            with psycopg.connect(plain) as conn:
                pending = conn.execute("SELECT count(*) FROM calls WHERE state <> 'done'")
                sent = conn.execute("SELECT count(*) FROM messages WHERE status = 'sent'")
                return bool(pending.fetchone()[0] == 0 and sent.fetchone()[0] >= callers)

        _wait(drained, timeout)
        time.sleep(3)  # a few more relay ticks: nothing else may happen
        finished = time.monotonic()
        with psycopg.connect(plain) as conn:
            rows = conn.execute("SELECT count(*) FROM calls").fetchone()[0]
            counts = dict(conn.execute("SELECT phone, call_count FROM volunteers").fetchall())
            sent = conn.execute("SELECT count(*) FROM messages WHERE status = 'sent'").fetchone()[0]
        recipients = Counter(r.form["To"] for r in fake.sms_requests())
        web, worker = processes
        return Result(
            calls=calls,
            callers=callers,
            seconds_posting=posted - began,
            seconds_draining=finished - posted,
            answered=answered,
            call_rows=rows,
            volunteers=len(counts),
            counts_match=counts == dict(expected),
            sms_sent=sent,
            sms_requests=sum(recipients.values()),
            duplicate_sms=sum(n - 1 for n in recipients.values() if n > 1),
            web_rss_mb=[_rss_mb(pid) for pid in _children(web.pid)],
            worker_rss_mb=[_rss_mb(pid) for pid in [worker.pid, *_children(worker.pid)]],
        )
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, 15)
                process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, 9)
        fake.stop()


def main() -> None:
    """Create a fresh database, run the soak, print the figures; exit 1 unless exact."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--callers", type=int, default=30_000)
    parser.add_argument("--rate", type=float, default=500.0, help="calls a second")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS signup_bench_soak WITH (FORCE)")
        conn.execute("CREATE DATABASE signup_bench_soak")
    database_url = "postgresql+psycopg://postgres@127.0.0.1:5432/signup_bench_soak"
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"soak-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "soak",
        "SIGNUP_INSTANCE_PATH": str(folder),
    }
    subprocess.run(
        [sys.executable, "-m", "signup.cli", "db", "upgrade"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    result = run(
        calls=args.calls,
        callers=args.callers,
        rate=args.rate,
        workers=args.workers,
        database_url=database_url,
        redis_url="redis://127.0.0.1:6379/13",
        folder=folder,
    )
    print(
        f"| calls | callers | posting s | draining s | answered | call rows | volunteers "
        f"| counts exact | SMS sent | SMS at provider | duplicate SMS |\n|{'---|' * 11}\n"
        f"| {result.calls:,} | {result.callers:,} | {result.seconds_posting:.1f} "
        f"| {result.seconds_draining:.1f} | {result.answered:,} | {result.call_rows:,} "
        f"| {result.volunteers:,} | {result.counts_match} | {result.sms_sent:,} "
        f"| {result.sms_requests:,} | {result.duplicate_sms} |"
    )
    print(
        "\nresident memory after the run, MB: gunicorn workers "
        + ", ".join(f"{mb:.0f}" for mb in result.web_rss_mb)
        + "; Celery worker (main, then pool and beat) "
        + ", ".join(f"{mb:.0f}" for mb in result.worker_rss_mb)
    )
    print("exact: nothing lost, nothing doubled" if result.exact else "NOT EXACT")
    sys.exit(0 if result.exact else 1)


if __name__ == "__main__":
    main()
