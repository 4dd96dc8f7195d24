"""Latency of the admin volunteer list and throughput of the CSV export at scale.

Creates a fresh PostgreSQL database (`signup_bench_admin`), builds the schema with the
project's migrations, seeds N volunteers (default 1,000,000) with set-based SQL, then calls
the real code inside an app context:

* signup.admin.services.list_page: first page, a page ~200 pages deep (sort=joined and
  sort=last_call), phone, name, campaign and state filters, an account scoped to one campaign;
* signup.volunteers.export.CsvExport: the whole table, bytes counted and sent to /dev/null,
  with the process's RSS sampled in a thread while it runs, and the CPU of this process and of
  its PostgreSQL backends; each round first copies the same rows with no expression
  (`COPY (SELECT id FROM volunteers)`, `COPY volunteers`) as baselines measured in the same
  conditions, since the machine is shared.

Each latency is measured with time.perf_counter over --runs runs after --warmup runs (the
session's transaction is rolled back between runs, as at the end of a request). For every
measurement whose p95 is above the later 50 ms target, the slowest statement the call issued
is captured and run again under EXPLAIN (ANALYZE, BUFFERS); the plans go to the results file.

    .venv/bin/python bench/admin.py                  # 1,000,000 volunteers
    .venv/bin/python bench/admin.py --quick          # 50,000 volunteers
    .venv/bin/python bench/admin.py --rows 200000 --keep
    .venv/bin/python bench/admin.py --reuse --keep   # measure an already seeded database
    .venv/bin/python bench/admin.py --database signup_bench_mine --keep  # a database of your own

Prints a markdown report and writes it to bench/results-admin.md (see --output).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask
from flask_migrate import upgrade
from psycopg import sql
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine

from signup import create_app
from signup.admin.access import Access
from signup.admin.services import PAGE_SIZE, Page, list_page
from signup.campaigns.models import Campaign
from signup.extensions import db
from signup.phones import normalise
from signup.users.models import Role
from signup.volunteers.export import CsvExport, VolunteerFilter
from signup.volunteers.models import Volunteer
from signup.volunteers.pgcopy import read_copy

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "signup_bench_admin"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
TIMEZONE = "Asia/Kolkata"
TARGET_MS = 100.0  # p95 of list, deep page and phone search at 1M rows (the issue)
LATER_TARGET_MS = 50.0  # a later issue
EXPORT_TARGET_S = 5.0  # 1M rows
LATER_EXPORT_RATE = 500_000  # rows per second
FLAT_RSS_MB = 32.0  # peak RSS growth during an export we still call flat
PHONE_MULTIPLIER = 2_654_435_761  # odd and not a multiple of 5: a bijection modulo 4e9
NEIGHBOURS = ("bench/webhook.py", "gunicorn", "wrk", "pytest", "celery")

CAMPAIGNS = (
    # slug, name, number, opt-out number, language, share of primary subscriptions
    ("clean-air", "Clean Air Now", "+918047250001", "+918047259001", "en", 0.60),
    ("jal-bachao", "जल बचाओ अभियान", "+918047250002", "+918047259002", "hi", 0.30),
    ("school-meals", "School Meals for All", "+918047250003", "+918047259003", "en", 0.10),
)
LATIN_FIRST = [
    "Aarav", "Priya", "Rahul", "Anjali", "Vikram", "Sneha", "Arjun", "Pooja", "Rohan",
    "Kavya", "Amit", "Neha", "Sanjay", "Divya", "Ravi", "Meera", "Suresh", "Lakshmi",
    "Imran", "Fatima", "Joseph", "Mary", "Harpreet", "Gurpreet", "Deepak", "Sunita",
    "Manoj", "Anita", "Karthik", "Ayesha", "Farhan", "Shalini",
]  # fmt: skip
LATIN_LAST = [
    "Sharma", "Verma", "Kumar", "Singh", "Patel", "Gupta", "Reddy", "Nair", "Iyer", "Das",
    "Khan", "Banerjee", "Mukherjee", "Yadav", "Joshi", "Mehta", "Pillai", "Chauhan",
    "D'Souza", "Fernandes", "Ansari", "Bose", "Rao", "Menon",
]  # fmt: skip
HINDI_FIRST = [
    "राहुल", "प्रिया", "अमित", "सुनीता", "विकास", "पूजा", "रमेश", "अनीता", "संजय",
    "कविता", "दीपक", "नेहा", "मोहन", "गीता",
]  # fmt: skip
HINDI_LAST = [
    "शर्मा", "वर्मा", "कुमार", "सिंह", "यादव", "गुप्ता", "मिश्रा", "तिवारी", "पाण्डेय",
    "चौहान",
]  # fmt: skip
PLACES = [
    "Uttar Pradesh|Lucknow", "Uttar Pradesh|Varanasi", "Maharashtra|Mumbai",
    "Bihar|Patna", "Maharashtra|Pune", "Karnataka|Bengaluru Urban", "Uttar Pradesh|Kanpur Nagar",
    "Tamil Nadu|Chennai", "West Bengal|Kolkata", "Rajasthan|Jaipur", "Bihar|Gaya",
    "Delhi|New Delhi", "Tamil Nadu|Madurai", "Karnataka|Mysuru", "Kerala|Ernakulam",
    "Maharashtra|Nagpur",
]  # fmt: skip

SEED_VOLUNTEERS = """
INSERT INTO volunteers (phone, name, status, call_count, first_call_at, last_call_at,
    consent_at, opted_out_at, state, district, pincode, language, created_at, updated_at)
SELECT phone, name, status, call_count, first_call_at, last_call_at,
    created_at, opted_out_at, state, district, pincode, language, created_at,
    greatest(created_at, last_call_at, opted_out_at)
FROM (
    SELECT
        c.phone, c.name, c.status, c.call_count, c.created_at,
        CASE WHEN c.call_count > 0 THEN c.created_at END AS first_call_at,
        CASE WHEN c.call_count > 1 THEN c.created_at + c.r_last * (c.now - c.created_at)
             WHEN c.call_count = 1 THEN c.created_at END AS last_call_at,
        CASE WHEN c.status = 'opted_out'
             THEN c.created_at + (0.5 + c.r_last / 2) * (c.now - c.created_at) END
            AS opted_out_at,
        CASE WHEN c.r_place < 0.08 THEN NULL ELSE split_part(c.place, '|', 1) END AS state,
        CASE WHEN c.r_place < 0.08 THEN NULL ELSE split_part(c.place, '|', 2) END AS district,
        CASE WHEN c.r_place < 0.2 THEN NULL ELSE c.pincode END AS pincode,
        CASE WHEN c.r_lang < 0.55 THEN 'hi' ELSE 'en' END AS language
    FROM (
        SELECT
            '+91' || (6000000000 + (s.g * %(multiplier)s::bigint) %% 4000000000)::text AS phone,
            CASE
                WHEN s.r_name < 0.03 THEN NULL
                WHEN s.r_name < 0.28 THEN
                    (%(hindi_first)s::text[])[1 + floor(s.r_first * %(n_hindi_first)s)::int]
                    || ' '
                    || (%(hindi_last)s::text[])[1 + floor(s.r_surname * %(n_hindi_last)s)::int]
                ELSE
                    (%(latin_first)s::text[])[1 + floor(s.r_first * %(n_latin_first)s)::int]
                    || ' '
                    || (%(latin_last)s::text[])[1 + floor(s.r_surname * %(n_latin_last)s)::int]
            END AS name,
            CASE WHEN s.r_status < 0.05 THEN 'opted_out' ELSE 'active' END AS status,
            CASE WHEN s.r_calls < 0.01 THEN 0  -- imported, never called
                 ELSE least(20, 1 + floor(-ln(1 - s.r_calls) * 0.9)::int) END AS call_count,
            s.start + (s.g - 1) * (interval '30 days' / %(rows)s::int)
                + s.r_jitter * interval '2 seconds' AS created_at,
            (%(places)s::text[])[1 + floor(power(s.r_place2, 1.7) * %(n_places)s)::int] AS place,
            (100000 + floor(s.r_pin * 900000))::int::text AS pincode,
            s.r_place, s.r_lang, s.r_last, s.now
        FROM (
            SELECT g, random() AS r_name, random() AS r_first, random() AS r_surname,
                random() AS r_status, random() AS r_calls, random() AS r_jitter,
                random() AS r_place, random() AS r_place2, random() AS r_pin,
                random() AS r_lang, random() AS r_last,
                now() - interval '30 days' AS start, now() AS now
            FROM generate_series(1, %(rows)s::int) AS g
        ) AS s
    ) AS c
) AS v
"""

SEED_SUBSCRIPTIONS = """
INSERT INTO subscriptions (volunteer_id, campaign_id, status, joined_at, opted_out_at,
    withdrawals)
SELECT v.id, (%(campaign_ids)s::int[])[1 + pick.idx], v.status, pick.joined_at, v.opted_out_at,
    CASE WHEN v.status = 'opted_out' THEN 1 ELSE 0 END
FROM (
    SELECT id, status, created_at, last_call_at, opted_out_at,
        CASE WHEN random() < %(share_0)s THEN 0
             WHEN random() < %(share_1_given_not_0)s THEN 1 ELSE 2 END AS first_idx,
        random() AS r_second, random() AS r_which
    FROM volunteers
) AS v
CROSS JOIN LATERAL (
    SELECT v.first_idx AS idx, v.created_at AS joined_at
    UNION ALL
    SELECT (v.first_idx + 1 + floor(v.r_which * 2)::int) %% 3,
        coalesce(v.last_call_at, v.created_at)
    WHERE v.r_second < 0.3
) AS pick
ORDER BY v.id, pick.idx
"""


# ---------------------------------------------------------------------------- machine


def read_first(path: str, key: str) -> str:
    """The value of the first `key: value` line of a /proc file, or '?'."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return "?"


def rss_mb() -> float:
    """This process's resident set size in MiB (VmRSS)."""
    value = read_first("/proc/self/status", "VmRSS")
    return int(value.split()[0]) / 1024 if value != "?" else math.nan


def neighbours() -> list[str]:
    """Other processes that look like load generators or servers (possible interference)."""
    found: set[str] = set()
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.update(name for name in NEIGHBOURS if name in cmdline)
    return sorted(found)


@dataclass(slots=True)
class Conditions:
    """Load around one phase of the benchmark."""

    load_before: float = 0.0
    load_after: float = 0.0
    neighbours: set[str] = field(default_factory=set)

    def note(self) -> str:
        """Loadavg(1 min) before/after and busy neighbours, for the table."""
        extra = f"; seen: {', '.join(sorted(self.neighbours))}" if self.neighbours else ""
        return f"load {self.load_before:.1f}→{self.load_after:.1f}{extra}"


@contextmanager
def watch(conditions: Conditions) -> Iterator[None]:
    """Record load average and neighbouring processes around a phase."""
    conditions.load_before = os.getloadavg()[0]
    conditions.neighbours.update(neighbours())
    try:
        yield
    finally:
        conditions.load_after = os.getloadavg()[0]
        conditions.neighbours.update(neighbours())


def machine(server: str) -> dict[str, str]:
    """nproc, memory, CPU model and the PostgreSQL server's version and main settings."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        version = str(conn.execute("SELECT version()").fetchone()[0])  # type: ignore[index]
        settings = {
            name: str(conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0])  # type: ignore[index]
            for name in ("shared_buffers", "work_mem", "effective_cache_size", "jit",
                         "max_parallel_workers_per_gather", "random_page_cost")
        }  # fmt: skip
    mem_kb = read_first("/proc/meminfo", "MemTotal").split()[0]
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "memory": f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb.isdigit() else "?",
        "cpu": read_first("/proc/cpuinfo", "model name"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": version,
        "settings": ", ".join(f"{k}={v}" for k, v in settings.items()),
    }


# ---------------------------------------------------------------------------- database


def recreate_database(server: str) -> None:
    """Drop (forcing connections off) and create the benchmark database."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


def drop_database(server: str) -> None:
    """Drop the benchmark database."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
        )


def build_app(server: str) -> Flask:
    """The real app on the benchmark database."""
    url = f"{server}/{DATABASE}".replace("postgresql://", "postgresql+psycopg://", 1)
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SIGNUP_ENV": "production",
            "SECRET_KEY": "bench",
            "TESTING": True,
            "SMS_QUIET_HOURS": "off",
            "RELAY_NUDGE": False,
            "SIGNUP_TIMEZONE": TIMEZONE,
            "SCHEMA_MIGRATIONS": True,
        }
    )


def seed(server: str, rows: int) -> dict[str, float]:
    """Insert campaigns, volunteers and subscriptions set-based; VACUUM ANALYZE; seconds taken."""
    timings: dict[str, float] = {}
    with psycopg.connect(f"{server}/{DATABASE}") as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute("SELECT setseed(0.2026)")
        campaign_ids: list[int] = []
        for slug, name, number, optout, language, _share in CAMPAIGNS:
            row = conn.execute(
                "INSERT INTO campaigns (slug, name, number, optout_number, language, sms_text,"
                " notice_version, created_at) VALUES (%s, %s, %s, %s, %s, %s, 1,"
                " now() - interval '60 days') RETURNING id",
                (slug, name, number, optout, language, f"Thanks for joining {name}."),
            ).fetchone()
            assert row is not None
            campaign_ids.append(int(row[0]))
        started = time.perf_counter()
        conn.execute(
            SEED_VOLUNTEERS,
            {
                "rows": rows,
                "multiplier": PHONE_MULTIPLIER,
                "latin_first": LATIN_FIRST,
                "latin_last": LATIN_LAST,
                "hindi_first": HINDI_FIRST,
                "hindi_last": HINDI_LAST,
                "places": PLACES,
                "n_latin_first": len(LATIN_FIRST),
                "n_latin_last": len(LATIN_LAST),
                "n_hindi_first": len(HINDI_FIRST),
                "n_hindi_last": len(HINDI_LAST),
                "n_places": len(PLACES),
            },
        )
        timings["volunteers"] = time.perf_counter() - started
        started = time.perf_counter()
        share_0, share_1 = CAMPAIGNS[0][5], CAMPAIGNS[1][5]
        conn.execute(
            SEED_SUBSCRIPTIONS,
            {
                "campaign_ids": campaign_ids,
                "share_0": share_0,
                "share_1_given_not_0": share_1 / (1 - share_0),
            },
        )
        timings["subscriptions"] = time.perf_counter() - started
        conn.commit()
    started = time.perf_counter()
    with psycopg.connect(f"{server}/{DATABASE}", autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) volunteers")
        conn.execute("VACUUM (ANALYZE) subscriptions")
        conn.execute("ANALYZE campaigns")
    timings["vacuum analyze"] = time.perf_counter() - started
    return timings


def data_profile(server: str) -> dict[str, Any]:
    """Counts and sizes of what was seeded."""
    with psycopg.connect(f"{server}/{DATABASE}", autocommit=True) as conn:

        def one(query: str) -> Any:
            row = conn.execute(query).fetchone()
            assert row is not None
            return row[0]

        return {
            "volunteers": one("SELECT count(*) FROM volunteers"),
            "opted_out": one("SELECT count(*) FROM volunteers WHERE status = 'opted_out'"),
            "devanagari names": one("SELECT count(*) FROM volunteers WHERE name ~ '[ऀ-ॿ]'"),
            "no last call": one("SELECT count(*) FROM volunteers WHERE last_call_at IS NULL"),
            "subscriptions": one("SELECT count(*) FROM subscriptions"),
            "per campaign": ", ".join(
                f"{slug}: {count:,}"
                for slug, count in conn.execute(
                    "SELECT c.slug, count(*) FROM subscriptions s JOIN campaigns c"
                    " ON c.id = s.campaign_id GROUP BY c.slug ORDER BY count(*) DESC"
                )
            ),
            "volunteers table": one("SELECT pg_size_pretty(pg_total_relation_size('volunteers'))"),
            "subscriptions table": one(
                "SELECT pg_size_pretty(pg_total_relation_size('subscriptions'))"
            ),
        }


# ---------------------------------------------------------------------------- measuring


@dataclass(slots=True)
class Statement:
    """One statement sent to the database during a call, with its parameters and duration."""

    sql: str
    parameters: Any
    seconds: float


@contextmanager
def capture(engine: Engine, *, keep_sql: bool = True) -> Iterator[list[Statement]]:
    """Record every statement executed on `engine` (execute + fetch time for psycopg).

    With keep_sql=False only durations are kept: holding hundreds of 5,000-id statements and
    their parameters would itself grow the process during an export.
    """
    captured: list[Statement] = []

    def before(conn: Any, _cursor: Any, _sql: str, _params: Any, _ctx: Any, _many: bool) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        elapsed = time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())
        captured.append(
            Statement(statement, params, elapsed) if keep_sql else Statement("", None, elapsed)
        )

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield captured
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(slots=True)
class Latency:
    """Timings (ms) of one repeated call, and what it returned."""

    name: str
    call: str
    samples: list[float]
    rows: int
    target: bool  # whether the issue sets a target for this one
    conditions: Conditions
    statements: list[Statement] = field(default_factory=list)
    plan: str = ""

    @property
    def p50(self) -> float:
        """Median in ms."""
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        """95th percentile in ms (nearest rank)."""
        return percentile(self.samples, 0.95)

    @property
    def worst(self) -> float:
        """Maximum in ms."""
        return max(self.samples)


def time_call(
    name: str, call: str, fn: Callable[[], Page], runs: int, warmup: int, *, target: bool
) -> Latency:
    """Warm up, then time `fn` `runs` times; roll the session back after each call."""
    conditions = Conditions()
    rows = 0
    with watch(conditions):
        for _ in range(warmup):
            fn()
            db.session.rollback()
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            page = fn()
            samples.append((time.perf_counter() - started) * 1000)
            db.session.rollback()
            rows = len(page.rows)
    with capture(db.engine) as statements:
        fn()
    db.session.rollback()
    result = Latency(name, call, samples, rows, target, conditions, list(statements))
    print(
        f"  {name:<44} p50 {result.p50:8.1f}  p95 {result.p95:8.1f}  max {result.worst:8.1f} ms"
        f"  ({rows} rows)",
        flush=True,
    )
    return result


def explain(statement: Statement) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a captured statement, with its real parameters."""
    result = db.session.connection().exec_driver_sql(
        "EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.parameters
    )
    plan = "\n".join(str(row[0]) for row in result)
    db.session.rollback()
    return plan


@dataclass(slots=True)
class Walk:
    """How a deep cursor was reached."""

    cursor: str
    pages: int  # pages of PAGE_SIZE skipped
    one_by_one: int  # of which followed one page at a time
    seconds: float  # for the pages followed one at a time


def walk(filters: VolunteerFilter, sort: str, pages: int, budget: float) -> Walk:
    """Follow next-page cursors `pages` pages deep, one page at a time for `budget` seconds.

    Past the budget the rest is skipped with one larger page, whose next cursor is the same
    one the page-by-page walk would reach (keyset: the last row of the rows skipped).
    """
    cursor: str | None = None
    walked = one_by_one = 0
    started = time.perf_counter()
    seconds = 0.0
    while walked < pages:
        single = time.perf_counter() - started < budget
        step = 1 if single else pages - walked
        page = list_page(filters, sort=sort, cursor=cursor, size=PAGE_SIZE * step)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        walked += step
        if single:
            one_by_one += 1
            seconds = time.perf_counter() - started
    db.session.rollback()
    if cursor is None:
        raise RuntimeError("too few volunteers for a second page")
    return Walk(cursor, walked, one_by_one, seconds)


class RssSampler(threading.Thread):
    """Samples VmRSS every few milliseconds until stopped; keeps the peak."""

    def __init__(self, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = rss_mb()
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Sample until stop()."""
        while not self._stop_event.is_set():
            self.peak = max(self.peak, rss_mb())
            self._stop_event.wait(self.interval)

    def stop(self) -> float:
        """Stop sampling and return the peak in MiB."""
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, rss_mb())
        return self.peak


@dataclass(slots=True)
class ExportRun:
    """One full CSV export, or one baseline COPY of the same rows."""

    what: str
    rows: int
    megabytes: float
    seconds: float
    cpu_seconds: float  # this process (Python), all threads
    sql_seconds: float  # executing and fetching the batch and slug queries
    statements: int
    rss_before: float
    rss_peak: float
    rss_after: float
    rss_checkpoints: list[float]  # after each tenth of the rows
    conditions: Conditions
    postgres_cpu: float = math.nan  # every backend of the benchmark database, from /proc
    baseline: float = math.nan  # seconds of this round's `COPY volunteers TO STDOUT`

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to the benchmark database.

    Read from /proc (PostgreSQL on this machine, readable by this user); NaN when it is not.
    Backends that started and ended between two readings are missed, so the exports keep their
    connections open (the pool) and the baselines read theirs before closing.
    """
    total = 0
    seen = False
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                title = handle.read().replace(b"\0", b" ") + b" "
            if f" {DATABASE} ".encode() not in title or b"autovacuum" in title:
                continue  # a client backend of the benchmark database only
            with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
        seen = True
    return total / tick if seen else math.nan


BASELINES = {
    "baseline: COPY (SELECT id FROM volunteers)": "SELECT id FROM volunteers",
    # The model's columns: the table as it was before it stored the export's cells (csv_head,
    # csv_tail), so that the ratio to this baseline compares with earlier runs.
    "baseline: COPY volunteers": "SELECT "  # noqa: S608 (the model's own column names)
    + ", ".join(column.name for column in Volunteer.__table__.columns)
    + " FROM volunteers",
}


def baseline_once(server: str, what: str) -> ExportRun:
    """COPY the same rows with no expression (one of BASELINES) to /dev/null, read as the export is.

    The reader is signup.volunteers.pgcopy.read_copy, the export's own, so the difference to the
    export is the export's query and its two connections, not the client.
    """
    conditions = Conditions()
    query = f"COPY ({BASELINES[what]}) TO STDOUT WITH (FORMAT csv)".encode()
    sampler = RssSampler()
    before = rss_mb()
    rows = written = 0
    with (
        watch(conditions),
        psycopg.connect(f"{server}/{DATABASE}") as conn,
        open(os.devnull, "wb") as sink,
    ):
        conn.execute("SELECT 1")
        pg_before = postgres_cpu_seconds()
        sampler.start()
        cpu = time.process_time()
        started = time.perf_counter()
        for count, block in read_copy(conn, query, None):
            sink.write(block)
            rows += count
            written += len(block)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        pg_cpu = postgres_cpu_seconds() - pg_before
        peak = sampler.stop()
    run = ExportRun(
        what=what,
        rows=rows,
        megabytes=written / 1024 / 1024,
        seconds=seconds,
        cpu_seconds=cpu,
        sql_seconds=0.0,
        statements=1,
        rss_before=before,
        rss_peak=peak,
        rss_after=rss_mb(),
        rss_checkpoints=[],
        conditions=conditions,
        postgres_cpu=pg_cpu,
    )
    print(
        f"  {what}: {run.rows:,} rows, {run.megabytes:.1f} MiB in {run.seconds:.2f} s"
        f" ({run.rate:,.0f} rows/s; CPU {run.cpu_seconds:.2f} s, PostgreSQL {pg_cpu:.2f} s)",
        flush=True,
    )
    return run


def export_once(expected_rows: int) -> ExportRun:
    """Stream the whole CSV to /dev/null, counting UTF-8 bytes and sampling RSS."""
    db.session.rollback()
    conditions = Conditions()
    step = max(1, expected_rows // 10)
    checkpoints: list[float] = []
    next_checkpoint = step
    written = 0
    sampler = RssSampler()
    before = rss_mb()
    with (
        watch(conditions),
        capture(db.engine, keep_sql=False) as statements,
        open(os.devnull, "wb") as sink,
    ):
        pg_before = postgres_cpu_seconds()
        sampler.start()
        cpu = time.process_time()
        started = time.perf_counter()
        export = CsvExport(VolunteerFilter(), TIMEZONE)
        for chunk in export:
            data = chunk if isinstance(chunk, bytes) else chunk.encode("utf-8")
            sink.write(data)
            written += len(data)
            if export.rows >= next_checkpoint:
                checkpoints.append(rss_mb())
                next_checkpoint += step
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        pg_cpu = postgres_cpu_seconds() - pg_before
        peak = sampler.stop()
    db.session.rollback()
    run = ExportRun(
        what="export: CsvExport(VolunteerFilter())",
        rows=export.rows,
        megabytes=written / 1024 / 1024,
        seconds=seconds,
        cpu_seconds=cpu,
        sql_seconds=sum(s.seconds for s in statements),
        statements=len(statements),
        rss_before=before,
        rss_peak=peak,
        rss_after=rss_mb(),
        rss_checkpoints=checkpoints,
        conditions=conditions,
        postgres_cpu=pg_cpu,
    )
    print(
        f"  export: {run.rows:,} rows, {run.megabytes:.1f} MiB in {run.seconds:.2f} s"
        f" ({run.rate:,.0f} rows/s; CPU {run.cpu_seconds:.2f} s, SQL {run.sql_seconds:.2f} s,"
        f" PostgreSQL {run.postgres_cpu:.2f} s);"
        f" RSS {run.rss_before:.0f} → peak {run.rss_peak:.0f} MiB",
        flush=True,
    )
    return run


# ---------------------------------------------------------------------------- scenario


@dataclass(slots=True)
class Results:
    """Everything the report needs."""

    rows: int
    latencies: list[Latency] = field(default_factory=list)
    exports: list[ExportRun] = field(default_factory=list)
    baselines: list[ExportRun] = field(default_factory=list)
    deep: list[str] = field(default_factory=list)  # how the deep cursors were reached


def pick_phone() -> tuple[str, str]:
    """An existing volunteer's E.164 number and the same number as typed: 0 + 10 digits."""
    middle = db.session.scalar(select(Volunteer.id).order_by(Volunteer.id.desc()).limit(1))
    assert middle is not None
    for offset in range(1000):
        phone = db.session.scalar(
            select(Volunteer.phone).where(Volunteer.id == middle // 2 + offset)
        )
        if phone and normalise("0" + phone[3:]).e164 == phone:
            db.session.rollback()
            return phone, "0" + phone[3:]
    raise RuntimeError("no seeded number is a valid Indian mobile number")


def measure(
    rows: int,
    runs: int,
    warmup: int,
    deep_pages: int,
    walk_budget: float,
    export_runs: int,
    server: str,
) -> Results:
    """Run every measurement inside the current app context."""
    results = Results(rows)
    everyone = VolunteerFilter()
    campaigns = {c.slug: c.id for c in db.session.scalars(select(Campaign))}
    db.session.rollback()
    small = CAMPAIGNS[-1][0]
    phone, typed = pick_phone()
    scope = Access(user_id=0, role=Role.ORGANISER, campaign_ids=frozenset({campaigns[small]}))
    scoped = VolunteerFilter(scope=scope)

    def page(filters: VolunteerFilter, sort: str = "joined") -> Callable[[], Page]:
        return lambda: list_page(filters, sort=sort)

    deep: list[tuple[str, str, Callable[[], Page], bool]] = []
    for sort in ("joined", "last_call"):
        done = walk(everyone, sort, deep_pages, walk_budget)
        skipped = done.pages - done.one_by_one
        results.deep.append(
            f"sort={sort}: followed {done.one_by_one} next-page cursors one page at a time in "
            f"{done.seconds:.2f} s ({done.seconds / max(done.one_by_one, 1) * 1000:.1f} ms a page)"
            + (
                f", then skipped {skipped} pages with one {skipped * PAGE_SIZE:,}-row page"
                if skipped
                else ""
            )
            + f"; timed page {done.pages + 1} (after {done.pages * PAGE_SIZE:,} rows)"
        )
        deep.append(
            (
                f"page {done.pages + 1}, sort={sort}",
                f"list_page(VolunteerFilter(), sort='{sort}', cursor=<page {done.pages + 1}>)",
                partial(list_page, everyone, sort=sort, cursor=done.cursor),
                True,
            )
        )
    scenarios: list[tuple[str, str, Callable[[], Page], bool]] = [
        ("first page, sort=joined", "list_page(VolunteerFilter())", page(everyone), True),
        (
            "first page, sort=last_call",
            "list_page(VolunteerFilter(), sort='last_call')",
            page(everyone, "last_call"),
            True,
        ),
        *deep,
        (
            "phone search, typed 0 + 10 digits",
            f"VolunteerFilter(q='0{phone[3:5]}…')",
            page(VolunteerFilter(q=typed)),
            True,
        ),
        ("name search 'kumar' (common)", "q='kumar'", page(VolunteerFilter(q="kumar")), False),
        (
            "name search 'Shalini Menon' (rare)",
            "q='Shalini Menon'",
            page(VolunteerFilter(q="Shalini Menon")),
            False,
        ),
        (
            "name search 'प्रिया शर्मा' (Devanagari)",
            "q='प्रिया शर्मा'",
            page(VolunteerFilter(q="प्रिया शर्मा")),
            False,
        ),
        ("name search 'zzqx' (no match)", "q='zzqx'", page(VolunteerFilter(q="zzqx")), False),
        (
            f"campaign filter ({small})",
            f"VolunteerFilter(campaign='{small}')",
            page(VolunteerFilter(campaign=small)),
            False,
        ),
        (
            "state filter (Kerala)",
            "VolunteerFilter(state='Kerala')",
            page(VolunteerFilter(state="Kerala")),
            False,
        ),
        (f"organiser scoped to {small}", "scope=Access(campaign_ids={id})", page(scoped), False),
        (
            f"organiser scoped to {small}, sort=last_call",
            "scope=Access(campaign_ids={id}), sort='last_call'",
            page(scoped, "last_call"),
            False,
        ),
    ]
    print("latency (ms):", flush=True)
    for line in results.deep:
        print(f"  ({line})", flush=True)
    for name, call, fn, target in scenarios:
        results.latencies.append(time_call(name, call, fn, runs, warmup, target=target))
    found = [r.rows for r in results.latencies if r.name.startswith("phone")]
    if found != [1]:
        raise RuntimeError(f"the phone search for {phone} found {found} rows, not 1")

    for latency in results.latencies:
        if latency.p95 > LATER_TARGET_MS and latency.statements:
            slowest = max(latency.statements, key=lambda s: s.seconds)
            latency.plan = explain(slowest)

    print("CSV export (whole table), each round after its baselines:", flush=True)
    for _ in range(export_runs):
        baselines = [baseline_once(server, what) for what in BASELINES]
        results.baselines += baselines
        run = export_once(rows)
        run.baseline = baselines[-1].seconds
        results.exports.append(run)
    return results


# ---------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    """A check mark or a cross."""
    return "yes" if ok else "**no**"


def report(
    results: Results,
    info: dict[str, str],
    command: str,
    seeding: dict[str, float],
    profile: dict[str, Any],
) -> str:
    """The markdown report."""
    n = results.rows
    lines = [
        "# Admin list and CSV export at scale",
        "",
        f"Generated by `bench/admin.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "## Machine and run",
        "",
        f"- Command: `{command}`",
        f"- N = **{n:,} volunteers**",
        f"- nproc: {info['nproc']}; memory: {info['memory']}; CPU: {info['cpu']}; "
        f"kernel {info['kernel']}; Python {info['python']}",
        f"- {info['postgresql']}",
        f"- PostgreSQL settings: {info['settings']}",
        "- Seed: " + "; ".join(f"{k} {v:.1f} s" for k, v in seeding.items()),
        "- Data: "
        + "; ".join(
            f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}" for k, v in profile.items()
        ),
        "",
        "The client (this script, calling signup's functions in-process) and PostgreSQL share "
        "the same machine. Other work (bench/webhook.py's gunicorn + wrk, test suites, Celery "
        "workers) may run at the same time on these 2 cores; the *conditions* column gives the "
        "1-minute load average before → after each measurement and any such process seen "
        f"({', '.join(NEIGHBOURS)} in a command line), so a slow figure under "
        "load can be told apart from a slow query (the EXPLAIN timings below are the "
        "server-side evidence).",
        "",
        "## Latency of signup.admin.services.list_page (50 rows + campaign slugs)",
        "",
        f"{len(results.latencies[0].samples)} timed runs after warm-up, time.perf_counter "
        "around the call, session rolled back between runs.",
        "",
        "| measurement | rows | p50 ms | p95 ms | max ms | p95 < 100 ms | p95 < 50 ms "
        "| conditions |",
        "|---|---:|---:|---:|---:|:-:|:-:|---|",
    ]
    for r in results.latencies:
        tag = "" if r.target else " ¹"
        lines.append(
            f"| {r.name}{tag} | {r.rows} | {r.p50:.1f} | {r.p95:.1f} | {r.worst:.1f} "
            f"| {verdict(r.p95 < TARGET_MS)} | {verdict(r.p95 < LATER_TARGET_MS)} "
            f"| {r.conditions.note()} |"
        )
    lines += [
        "",
        "¹ The issue sets targets for the list, the deep page and the phone search; the other "
        "filters are held to the same numbers for reference.",
        "",
        "Deep cursors: " + "; ".join(results.deep) + ".",
        "",
        "## CSV export: CsvExport(VolunteerFilter(), 'Asia/Kolkata'), whole table",
        "",
        "Each round copies the same rows twice without any expression (the baselines: "
        "`COPY (SELECT id FROM volunteers) TO STDOUT` and `COPY volunteers TO STDOUT` of the "
        "model's 18 columns, all but the stored export cells, CSV), then runs the export; all "
        "three are read by the export's own reader "
        "(signup.volunteers.pgcopy.read_copy) and written to /dev/null. *× table copy* is the "
        "export's time over the `COPY volunteers` of its round. Python CPU = this process "
        "(all threads); PostgreSQL CPU = every backend of the benchmark database, from /proc. "
        "RSS of this process sampled every 5 ms in a thread.",
        "",
        "| round | what | rows | MiB | seconds | rows/s | × table copy | Python CPU s "
        "| PostgreSQL CPU s | RSS before → peak → after MiB | conditions |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    per_round = len(BASELINES)
    for i, e in enumerate(results.exports):
        for b in results.baselines[i * per_round : (i + 1) * per_round]:
            lines.append(export_row(i + 1, b, "1.00" if b.what.endswith("volunteers") else ""))
        lines.append(export_row(i + 1, e, f"{e.seconds / e.baseline:.2f}", bold=True))
    if results.exports:
        lines += [
            "",
            "RSS at each tenth of the export's rows (MiB): "
            + "; ".join(
                f"round {i}: " + " ".join(f"{v:.0f}" for v in e.rss_checkpoints)
                for i, e in enumerate(results.exports, 1)
            )
            + ".",
        ]
    lines += ["", "## Targets", "", *targets(results), ""]
    plans = [r for r in results.latencies if r.plan]
    if plans:
        lines += [
            "## Query plans of the measurements above 50 ms",
            "",
            "The slowest statement each call issued, captured from SQLAlchemy and run again as "
            "EXPLAIN (ANALYZE, BUFFERS) with the same parameters.",
            "",
        ]
        for r in plans:
            slowest = max(r.statements, key=lambda s: s.seconds)
            lines += [
                f"### {r.name}",
                "",
                "```sql",
                slowest.sql.strip(),
                "```",
                f"Parameters: `{slowest.parameters!r}`",
                "",
                "```",
                r.plan,
                "```",
                "",
            ]
    return "\n".join(lines)


def export_row(round_: int, run: ExportRun, ratio: str, *, bold: bool = False) -> str:
    """One line of the export table."""
    rate = f"**{run.rate:,.0f}**" if bold else f"{run.rate:,.0f}"
    return (
        f"| {round_} | {run.what} | {run.rows:,} | {run.megabytes:.1f} | {run.seconds:.2f} "
        f"| {rate} | {ratio} | {run.cpu_seconds:.2f} | {run.postgres_cpu:.2f} "
        f"| {run.rss_before:.0f} → {run.rss_peak:.0f} → {run.rss_after:.0f} "
        f"| {run.conditions.note()} |"
    )


def write_json(folder: Path, results: Results) -> None:
    """admin.json (query latencies) and export.json (rows/s, with the baselines) for charts."""
    folder.mkdir(parents=True, exist_ok=True)
    queries = [
        {"name": r.name, "p50_ms": r.p50, "p95_ms": r.p95} for r in results.latencies if r.target
    ]
    (folder / "admin.json").write_text(json.dumps({"rows": results.rows, "queries": queries}))
    series = []
    for runs, ours in ((results.baselines, False), (results.exports, True)):
        for what in dict.fromkeys(run.what for run in runs):
            rates = [run.rate for run in runs if run.what == what]
            series.append(
                {
                    "label": what,
                    "rows_s": statistics.median(rates),
                    "ours": ours,
                    # a few bytes a row: it measures the reader, and would dwarf the chart
                    "chart": what != "baseline: COPY (SELECT id FROM volunteers)",
                }
            )
    (folder / "export.json").write_text(json.dumps({"rows": results.rows, "series": series}))


def targets(results: Results) -> list[str]:
    """One line per target of the issues: met or not, with the figure."""
    lines = []
    targeted = [r for r in results.latencies if r.target]
    scale = "" if results.rows >= 1_000_000 else f" (measured at {results.rows:,} rows, not 1M)"
    for limit, label in ((TARGET_MS, "issue"), (LATER_TARGET_MS, "later issue")):
        missed = [r for r in targeted if r.p95 >= limit]
        status = "met" if not missed else "**not met**"
        detail = (
            "worst p95 " + f"{max(r.p95 for r in targeted):.1f} ms"
            if not missed
            else "missed by " + ", ".join(f"{r.name} (p95 {r.p95:.1f} ms)" for r in missed)
        )
        lines.append(
            f"- List, deep page and phone search p95 < {limit:.0f} ms ({label}): "
            f"{status}{scale}; {detail}."
        )
    if results.exports:
        best = min(results.exports, key=lambda e: e.seconds)
        median_seconds = statistics.median(e.seconds for e in results.exports)
        scaled = median_seconds * 1_000_000 / max(results.rows, 1)
        growth = max(e.rss_peak - e.rss_before for e in results.exports)
        flat = growth < FLAT_RSS_MB
        lines += [
            f"- Export of 1M rows in < {EXPORT_TARGET_S:.0f} s (issue): "
            f"{'met' if scaled < EXPORT_TARGET_S else '**not met**'}{scale}; median "
            f"{median_seconds:.2f} s for {results.rows:,} rows"
            + (f" (≈ {scaled:.1f} s per million)" if results.rows != 1_000_000 else "")
            + f", best {best.seconds:.2f} s.",
            f"- Export at ≥ {LATER_EXPORT_RATE:,} rows/s (later issue): "
            f"{'met' if best.rate >= LATER_EXPORT_RATE else '**not met**'}; best "
            f"{best.rate:,.0f} rows/s, median "
            f"{statistics.median(e.rate for e in results.exports):,.0f} rows/s; the export "
            f"took {statistics.median(e.seconds / e.baseline for e in results.exports):.2f}× "
            "the time of a plain `COPY volunteers` in its round (median).",
            f"- Flat memory during the export (peak RSS growth < {FLAT_RSS_MB:.0f} MiB): "
            f"{'met' if flat else '**not met**'}; largest growth {growth:.1f} MiB.",
        ]
    return lines


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="volunteers to seed")
    parser.add_argument("--quick", action="store_true", help="50,000 volunteers, fewer runs")
    parser.add_argument("--runs", type=int, default=None, help="timed runs (default 40; 20 quick)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--deep-pages", type=int, default=200, help="pages to walk for deep")
    parser.add_argument(
        "--walk-budget",
        type=float,
        default=10.0,
        help="seconds of page-by-page walking before skipping the rest of the way in one page",
    )
    parser.add_argument("--export-runs", type=int, default=3, help="full CSV exports")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL URL, no database")
    parser.add_argument(
        "--database", default=DATABASE, help="benchmark database (dropped; must contain 'bench')"
    )
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the existing database; no seeding"
    )
    parser.add_argument("--json", type=Path, help="folder for admin.json and export.json (charts)")
    parser.add_argument(
        "--output", default=str(ROOT / "bench" / "results-admin.md"), help="'-' for none"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = 50_000
        args.runs = args.runs or 20
    args.runs = args.runs or 40
    return args


def main(argv: list[str] | None = None) -> int:
    """Seed, measure, report, clean up."""
    args = parse_args(argv)
    if "bench" not in args.database:
        raise SystemExit("--database must contain 'bench': the run drops it")
    global DATABASE
    DATABASE = args.database
    command = shlex.join([".venv/bin/python", "bench/admin.py", *sys.argv[1:]])
    info = machine(args.server)
    seeding: dict[str, float] = {}
    try:
        if not args.reuse:
            print(f"creating {DATABASE} and seeding {args.rows:,} volunteers…", flush=True)
            recreate_database(args.server)
            app = build_app(args.server)
            with app.app_context():
                upgrade()
                db.engine.dispose()
            seeding = seed(args.server, args.rows)
            print("  " + "; ".join(f"{k} {v:.1f} s" for k, v in seeding.items()), flush=True)
        else:
            app = build_app(args.server)
        profile = data_profile(args.server)
        rows = int(profile["volunteers"])
        with app.app_context():
            db.session.execute(text("SELECT 1"))
            db.session.rollback()
            results = measure(
                rows,
                args.runs,
                args.warmup,
                args.deep_pages,
                args.walk_budget,
                args.export_runs,
                args.server,
            )
            db.session.remove()
            db.engine.dispose()
    finally:
        if not args.keep:
            drop_database(args.server)
    markdown = report(results, info, command, seeding, profile)
    if args.json:
        write_json(args.json, results)
    print()
    print(markdown)
    if args.output != "-":
        Path(args.output).write_text(markdown + "\n", encoding="utf-8")
        print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
