"""Sending: queued SMS through a real `celery worker -Q sending --pool threads` against a fake
Twilio that takes 200 ms per request; SMS/s end to end, and the most requests the fake saw in any
one second, which must not exceed SMS_RATE_PER_SECOND.

    .venv/bin/python bench/sending.py                                  # 5,000 SMS at 250/s
    .venv/bin/python bench/sending.py --messages 1000 --rate 100 --concurrency 32 --workers 2

Runs on 127.0.0.1 against local PostgreSQL (a database it drops and creates) and Redis (a
database it flushes); stops every process it started. Markdown on stdout, progress on stderr.
Exit status 1 when a message was not sent exactly once or the rate was exceeded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import insert
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.fakes.slow_twilio import SlowTwilio, max_in_window  # noqa: E402 - a local fake

SID = "AC" + "7" * 32
NUMBER = "+918047259725"


@dataclass
class Figures:
    """What one run measured."""

    messages: int
    seconds: float  # first request at the fake -> last message recorded `sent`
    requests: int
    recipients: int
    sent_rows: int
    distinct_sids: int
    max_window: int
    max_in_flight: int
    connections: int
    worker_cpu: float
    per_second_counts: list[int]  # requests at the fake in each whole second of the run

    @property
    def per_second(self) -> float:
        """SMS a second, end to end."""
        return self.messages / self.seconds if self.seconds else 0.0

    def exact(self) -> bool:
        """Every message sent exactly once, each with its own provider id."""
        return (
            self.requests == self.recipients == self.sent_rows == self.distinct_sids
            and self.sent_rows == self.messages
        )


def log(text: str) -> None:
    """Progress, on stderr."""
    print(text, file=sys.stderr, flush=True)


def recreate(database_url: str) -> None:
    """Drop and create the benchmark database (its name must contain `bench`)."""
    url = make_url(database_url)
    if "bench" not in (url.database or ""):
        raise SystemExit("--database must contain 'bench': the run drops it")
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{url.database}"')


def seed(count: int, batch: int) -> list[int]:
    """Migrate, then add a campaign and `count` volunteers each with a queued onboarding SMS.

    Publishes one send_message per message, or with `batch` one send_messages per that many.
    """
    from signup import clock, create_app
    from signup.campaigns import services as campaigns
    from signup.extensions import db
    from signup.messaging import texts
    from signup.messaging.models import Message, MessageKind, MessageStatus
    from signup.volunteers.models import Subscription, Volunteer

    subprocess.run(
        [sys.executable, "-m", "signup.cli", "db", "upgrade"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    app = create_app()
    with app.app_context():
        settings = campaigns.CampaignSettings(name="Bench Abhiyan", number=NUMBER)
        campaign = campaigns.create_campaign(slug="bench", settings=settings)
        db.session.flush()
        now = clock.now()
        phones = [f"+9197{n:08d}" for n in range(count)]
        volunteer_ids = db.session.scalars(
            insert(Volunteer).returning(Volunteer.id),
            [{"phone": p, "call_count": 1, "consent_at": now} for p in phones],
        ).all()
        db.session.execute(  # subscribed: a message for someone who left is never sent
            insert(Subscription),
            [
                {"volunteer_id": v, "campaign_id": campaign.id, "joined_at": now}
                for v in volunteer_ids
            ],
        )
        body = texts.render(MessageKind.ONBOARDING, campaign)
        ids = db.session.scalars(
            insert(Message).returning(Message.id),
            [
                {
                    "volunteer_id": volunteer_id,
                    "campaign_id": campaign.id,
                    "kind": MessageKind.ONBOARDING,
                    "to_phone": phone,
                    "body": body,
                    "status": MessageStatus.QUEUED,
                    "queued_at": now,
                    "next_attempt_at": now,
                }
                for volunteer_id, phone in zip(volunteer_ids, phones, strict=True)
            ],
        ).all()
        db.session.commit()
        celery = app.extensions["celery"]
        # Routed to the `sending` queue by task_routes.
        if batch:
            for start in range(0, len(ids), batch):
                celery.send_task(
                    "signup.messaging.tasks.send_messages", args=[list(ids[start : start + batch])]
                )
        else:
            for message_id in ids:
                celery.send_task("signup.messaging.tasks.send_message", args=[message_id])
        db.engine.dispose()
    return list(ids)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(value) for value in fields[11:15]) / ticks


def sent_rows(database_url: str) -> tuple[int, int]:
    """Messages recorded `sent`, and their distinct provider ids."""
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT provider_message_id) FROM messages"
            " WHERE status = 'sent'"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def run(args: argparse.Namespace, folder: Path) -> Figures:
    """One run against a fresh database; every process it starts is stopped."""
    fake = SlowTwilio(latency=args.latency)
    env: dict[str, Any] = {
        **os.environ,
        "DATABASE_URL": args.database,
        "REDIS_URL": args.redis,
        "SIGNUP_ENV": "production",
        "SECRET_KEY": "bench",
        "SMS_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": "bench-token",
        "TWILIO_FROM_NUMBER": "+15005550006",
        "TWILIO_API_BASE_URL": fake.start(),
        "SMS_QUIET_HOURS": "off",
        "SMS_RATE_PER_SECOND": str(args.rate),
        "SMS_RATE_BURST": str(args.burst),
        "LOG_LEVEL": args.log_level,
        "SIGNUP_INSTANCE_PATH": str(folder),
    }
    os.environ.update(env)
    redis.Redis.from_url(args.redis).flushdb()
    recreate(args.database)
    log(f"seeding {args.messages} queued messages")
    seed(args.messages, args.batch)
    workers = []
    output = (folder / "workers.log").open("wb")
    for index in range(args.workers):
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "workers",
                    "worker",
                    "-Q",
                    "sending",
                    "--pool",
                    "threads",
                    f"--concurrency={args.concurrency}",
                    f"--loglevel={args.log_level}",
                    "-n",
                    f"sending{index}@%h",
                    *(
                        ["--beat", "--schedule", str(folder / "beat")]
                        if args.beat and not index
                        else []
                    ),
                ],
                env=env,
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    try:
        log(f"{args.workers} worker(s) × {args.concurrency} threads started; sending")
        deadline = time.monotonic() + args.timeout
        while not fake.arrivals and time.monotonic() < deadline:
            time.sleep(0.01)
        cpu_at_start = sum(cpu_seconds(w.pid) for w in workers)  # after imports and start-up
        done = (0, 0)
        while time.monotonic() < deadline:
            done = sent_rows(args.database)
            if done[0] >= args.messages:
                break
            time.sleep(0.2)
        finished = time.monotonic()
        time.sleep(2)  # anything sent twice would arrive now
        done = sent_rows(args.database)
        cpu = sum(cpu_seconds(w.pid) for w in workers) - cpu_at_start
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, 9)
                worker.wait()
        fake.stop()
    arrivals = fake.snapshot()
    times = [at for at, _ in arrivals]
    return Figures(
        messages=args.messages,
        seconds=finished - times[0] if times else 0.0,
        requests=len(arrivals),
        recipients=len({to for _, to in arrivals}),
        sent_rows=done[0],
        distinct_sids=done[1],
        max_window=max_in_window(times),
        max_in_flight=fake.max_in_flight,
        connections=fake.connections,
        worker_cpu=cpu,
        per_second_counts=_per_second(times),
    )


def _per_second(times: list[float]) -> list[int]:
    """Requests in each second from the first one (for the chart)."""
    if not times:
        return []
    counts = [0] * (int(times[-1] - times[0]) + 1)
    for at in times:
        counts[int(at - times[0])] += 1
    return counts


def machine() -> str:
    """CPU model and count, kernel, Python and PostgreSQL versions."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    plain = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(plain) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return (
        f"{model}, {os.cpu_count()} CPUs; Linux {platform.release()}; "
        f"Python {platform.python_version()}; PostgreSQL {row[0] if row else '?'}"
    )


def main() -> None:
    """Parse options, run once, print the markdown report; exit 1 on a wrong count or rate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=250.0, help="SMS_RATE_PER_SECOND")
    parser.add_argument("--burst", type=float, default=1.0, help="SMS_RATE_BURST")
    parser.add_argument("--latency", type=float, default=0.2, help="fake provider, seconds")
    parser.add_argument("--concurrency", type=int, default=96, help="threads per worker")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--batch", type=int, default=0, help="ids per send_messages task (0: one send_message each)"
    )
    parser.add_argument(
        "--beat",
        action="store_true",
        help="embedded beat in the first worker: the relay resends what waited past its slot",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/signup_bench_sending"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--json", type=Path, help="also write the figures here (for charts)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sending-") as folder:
        figures = run(args, Path(folder))
    limit = args.rate + args.burst - 1  # a token bucket admits its burst on top of the rate
    rate_ok = figures.max_window <= limit
    print(f"Machine: {machine()}\n")
    print(
        "| workers × threads | task | rate/s (burst) | latency | SMS | SMS/s | max in any 1 s "
        "| in flight (max) | connections | worker CPU s / 1000 SMS | exactly once |"
    )
    print("|" + "---|" * 11)
    task = f"send_messages × {args.batch}" if args.batch else "send_message"
    print(
        f"| {args.workers} × {args.concurrency} | {task} | {args.rate:g} ({args.burst:g}) "
        f"| {args.latency * 1000:.0f} ms | {figures.messages:,} | {figures.per_second:.0f} "
        f"| {figures.max_window} {'≤' if rate_ok else '>'} {limit:g} "
        f"| {figures.max_in_flight} | {figures.connections} "
        f"| {figures.worker_cpu / figures.messages * 1000:.1f} "
        f"| {'yes' if figures.exact() else 'NO'} |"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "sms_per_s": figures.per_second,
                    "rate": args.rate,
                    "latency_ms": args.latency * 1000,
                    "max_window": figures.max_window,
                    "cpu_ms_per_sms": figures.worker_cpu / figures.messages * 1000,
                    "exact": figures.exact(),
                    "per_second": figures.per_second_counts,
                },
                indent=2,
            )
        )
    if not figures.exact():
        log(f"not exact: {figures}")
    sys.exit(0 if figures.exact() and rate_ok else 1)


if __name__ == "__main__":
    main()
