"""Processing throughput: recorded calls turned into volunteers, consent and SMS rows per second.

    .venv/bin/python bench/processing.py                        # 100,000 calls, 30,000 callers
    .venv/bin/python bench/processing.py --workers 1,2,4        # the scaling run
    .venv/bin/python bench/processing.py --calls 20000 --callers 6000 --workers 2   # quick

For each worker count: a fresh database with the calls already recorded as the webhook records
them (`pending`), then a real Celery worker (`-Q intake`, prefork, that many processes) and a
beat process drain them through the relay. The rate is taken between 10% and 90% done, so start
and finish do not blur it. The baseline, in the same run and with the same worker, is the rate
at which it drains empty tasks (Celery's built-in `celery.accumulate`). Afterwards the rows must
match the input exactly: one volunteer per caller, call counts that add up, one consent event
and one onboarding SMS row per person. The report is markdown on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parents[1]
SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "signup_bench_processing"
REDIS_URL = "redis://127.0.0.1:6379/14"
NUMBER = "+918047259725"


@dataclass
class Run:
    """One worker count's figures."""

    workers: int
    calls: int
    callers: int
    calls_per_s: float
    empty_tasks_per_s: float
    seconds: float
    exact: bool
    worker_rss_mb: float
    detail: dict[str, int]


def note(message: str) -> None:
    print(f"[processing] {message}", file=sys.stderr, flush=True)


def env(folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}",
        "REDIS_URL": REDIS_URL,
        "SIGNUP_ENV": "production",
        "SECRET_KEY": "bench",
        "SMS_PROVIDER": "console",
        "SMS_QUIET_HOURS": "off",
        "LOG_LEVEL": "WARNING",
        "SIGNUP_INSTANCE_PATH": str(folder),
        "RELAY_NUDGE": "false",
    }


def signup(environment: dict[str, str], *args: str) -> None:
    subprocess.run(
        [str(ROOT / ".venv/bin/signup"), *args],
        env=environment,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def prepare(environment: dict[str, str], calls: int, callers: int, seed: int) -> None:
    """A fresh schema, one campaign, and the calls recorded as pending (as the webhook does)."""
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    signup(environment, "db", "upgrade")
    signup(environment, "campaign", "create", "--slug", "jan", "--name", "Jan", "--number", NUMBER)
    rng = random.Random(seed)
    phones = [f"+9198{n:08d}" for n in rng.sample(range(10**8), callers)]
    plan = phones + [rng.choice(phones) for _ in range(calls - callers)]  # everyone calls once
    rng.shuffle(plan)
    start = datetime.now(UTC) - timedelta(hours=24)
    step = timedelta(hours=24) / calls  # a day's drive, as the calls came
    buffer = io.StringIO()
    for index, phone in enumerate(plan):
        at = (start + step * index).isoformat()
        sid = f"CA{index:032x}"
        buffer.write(
            f"twilio\t{sid}\t{phone}\t{NUMBER}\t{phone}\tmobile\t{NUMBER}\tpending\t0\t{at}\n"
        )
    with psycopg.connect(f"{SERVER}/{DATABASE}") as conn, conn.cursor() as cursor:
        columns = (
            "provider, provider_call_id, from_raw, to_raw, caller, caller_kind, called, state,"
            " attempts, received_at"
        )
        with cursor.copy(f"COPY calls ({columns}) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
        # The calls only. ANALYZE of the whole database would record the empty volunteers
        # table as empty: the foreign-key checks of every row inserted that refers to a
        # volunteer (subscriptions, consent events, messages) would then be planned, once per
        # worker connection, as sequential scans, each slower as the table grew, until
        # autovacuum analyzed it again. A new deployment's tables have never been analyzed,
        # which plans those checks on the primary key (docs/benchmarks.md, Processing).
        conn.execute("ANALYZE calls")


def unprocessed() -> int:
    """Calls not yet processed (the partial index ix_calls_unprocessed makes this cheap)."""
    with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM calls WHERE state IN ('pending', 'queued')")
        return int(row.fetchone()[0])  # type: ignore[index]


def processed_rate(calls: int) -> float:
    """Calls a second between the 10th and 90th percentile of processing times."""
    with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
        low, high = conn.execute(
            "SELECT percentile_disc(0.1) WITHIN GROUP (ORDER BY processed_at),"
            " percentile_disc(0.9) WITHIN GROUP (ORDER BY processed_at) FROM calls"
        ).fetchone()  # type: ignore[misc]
    return 0.8 * calls / max((high - low).total_seconds(), 1e-3)


def counts() -> dict[str, int]:
    with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
        row = conn.execute(
            """SELECT
                 (SELECT count(*) FROM calls WHERE state = 'done'),
                 (SELECT count(*) FROM calls WHERE state NOT IN ('done')),
                 (SELECT count(*) FROM volunteers),
                 (SELECT coalesce(sum(call_count), 0) FROM volunteers),
                 (SELECT count(*) FROM calls WHERE outcome = 'flooding'),
                 (SELECT count(*) FROM consent_events),
                 (SELECT count(*) FROM messages),
                 (SELECT count(DISTINCT volunteer_id) FROM messages)"""
        ).fetchone()
    assert row is not None
    keys = (
        "done",
        "not_done",
        "volunteers",
        "call_counts",
        "flooding",
        "consent",
        "sms",
        "sms_people",
    )
    return dict(zip(keys, (int(v) for v in row), strict=True))


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    for candidate in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


def children(pid: int) -> list[int]:
    try:
        found = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []
    return found + [g for c in found for g in children(c)]


@contextmanager
def processes(environment: dict[str, str], folder: Path, workers: int) -> Iterator[int]:
    """A prefork worker on the intake queue (and the default one) plus beat; yields its pid."""
    celery = [str(ROOT / ".venv/bin/celery"), "-A", "workers"]
    worker = subprocess.Popen(
        [
            *celery,
            "worker",
            "-Q",
            "intake,celery",
            f"--concurrency={workers}",
            "--loglevel=WARNING",
            "-n",
            f"bench{workers}@%h",
        ],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "worker.log").open("wb"),
    )
    beat = subprocess.Popen(
        [*celery, "beat", "-s", str(folder / "beat"), "--loglevel=WARNING"],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "beat.log").open("wb"),
    )
    try:
        yield worker.pid
    finally:
        for process in (beat, worker):
            process.terminate()
        for process in (beat, worker):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def drain_rate(done: list[tuple[float, int]], total: int) -> float:
    """Items per second between 10% and 90% of the total, from (time, done) samples."""
    low = next(t for t, d in done if d >= total * 0.1)
    high_t, high_d = next((t, d) for t, d in done if d >= total * 0.9)
    low_d = next(d for t, d in done if t == low)
    return (high_d - low_d) / max(high_t - low, 1e-9)


def empty_task_rate(tasks: int) -> float:
    """Publish empty tasks to the default queue and time the worker draining them."""
    from workers import celery  # the project's Celery app, for publishing only

    client = redis.Redis.from_url(REDIS_URL)
    for _ in range(tasks):
        celery.send_task("celery.accumulate", args=[1], queue="celery")
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        left = int(client.llen("celery")) + int(client.hlen("unacked"))
        samples.append((time.monotonic(), tasks - left))
        if left == 0:
            break
        time.sleep(0.05)
    return drain_rate(samples, tasks)


def run(workers: int, calls: int, callers: int, baseline_tasks: int, timeout: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="bench-processing-") as tmp:
        folder = Path(tmp)
        environment = env(folder)
        os.environ.update(
            {
                k: environment[k]
                for k in (
                    "DATABASE_URL",
                    "REDIS_URL",
                    "SECRET_KEY",
                    "SIGNUP_ENV",
                    "SIGNUP_INSTANCE_PATH",
                )
            }
        )
        note(f"{workers} worker process(es): preparing {calls:,} calls from {callers:,} callers")
        prepare(environment, calls, callers, seed=workers)
        redis.Redis.from_url(REDIS_URL).flushdb()
        with processes(environment, folder, workers) as pid:
            started = time.monotonic()
            while time.monotonic() - started < timeout and unprocessed() > 0:
                time.sleep(0.5)
            seconds = time.monotonic() - started
            rate = processed_rate(calls) if unprocessed() == 0 else 0.0
            rss = rss_mb(pid)
            note(f"calls drained at {rate:,.0f}/s; now the empty-task baseline")
            baseline = empty_task_rate(baseline_tasks)
        detail = counts()
    joined = calls - detail["flooding"]
    exact = (
        detail["done"] == calls
        and detail["volunteers"] == callers
        and detail["call_counts"] == joined
        and detail["consent"] == callers
        and detail["sms"] == detail["sms_people"] == callers
    )
    return Run(workers, calls, callers, rate, baseline, seconds, exact, rss, detail)


def report(runs: list[Run]) -> str:
    lines = [
        "| worker processes | calls | callers | calls/s (10–90%) | empty tasks/s (baseline) | "
        "calls / empty tasks | worker RSS MB | exact |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r.workers} | {r.calls:,} | {r.callers:,} | {r.calls_per_s:,.0f} | "
            f"{r.empty_tasks_per_s:,.0f} | {r.calls_per_s / max(r.empty_tasks_per_s, 1):.2f} | "
            f"{r.worker_rss_mb:.0f} | {'yes' if r.exact else 'NO ' + json.dumps(r.detail)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--callers", type=int, default=30_000)
    parser.add_argument("--workers", default="2", help="comma-separated worker process counts")
    parser.add_argument("--baseline-tasks", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    runs = [
        run(int(w), args.calls, args.callers, args.baseline_tasks, args.timeout)
        for w in args.workers.split(",")
    ]
    print(report(runs))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=2))
    return 0 if all(r.exact for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
