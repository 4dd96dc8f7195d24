"""How fast could any SQL-formatted export of the volunteers be on this machine?

Copies the rows of a database seeded by `bench/admin.py --keep` with `psql` (libpq in C, no
Python reading the rows): two processes at once, each copying every other segment of
pgcopy.SEGMENT ids, as the export shares them between its two connections, output to
/dev/null. Each round times, in the same conditions:

* the export's own query in Asia/Kolkata (signup.volunteers.pgcopy.stored_query: each row's
  stored cells joined around its campaigns cell from `subscriptions`, copied as binary);
* the export's query in a zone whose cells are not stored (pgcopy.copy_query: campaigns from
  `subscriptions`, formula safety and ISO times formatted at export time), and the same
  without the campaigns column, so without reading `subscriptions`;
* the contract's thirteen columns as stored, with no expression and no join (the floor of any
  export whose CSV PostgreSQL writes);
* `SELECT *`: every column of the table as stored.

    .venv/bin/python bench/admin.py --keep            # seed signup_bench_admin once
    .venv/bin/python bench/export_floor.py --rounds 3

Prints a markdown table: seconds and rows a second for each, per round and the median.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from signup import create_app  # noqa: E402
from signup.extensions import db  # noqa: E402
from signup.volunteers import pgcopy  # noqa: E402
from signup.volunteers.export import VolunteerFilter  # noqa: E402

DATABASE = "signup_bench_admin"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
TIMEZONE = "Asia/Kolkata"
STREAMS = pgcopy.STREAMS
STORED = (
    "phone, name, status, call_count, first_call_at, last_call_at, consent_at, opted_out_at,"
    " state, district, pincode, language"
)

Bounds = tuple[int | None, int | None]  # (after, up to and including); None: open


def copy_statements(url: str, parts: list[Bounds]) -> dict[str, list[str]]:
    """Each variant's COPY statements, one per segment, built by the export's own code."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url.replace("postgresql://", "postgresql+psycopg://", 1),
            "SECRET_KEY": "bench",
            "SIGNUP_ENV": "production",
            "TESTING": True,
        }
    )
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            connection = raw.driver_connection
            assert isinstance(connection, psycopg.Connection)
            campaigns = pgcopy.campaigns_in_slug_order(connection)
            condition = VolunteerFilter().condition()

            def export(campaign_list: list[tuple[int, str]], bounds: Bounds) -> str:
                query = pgcopy.copy_query(condition, campaign_list, TIMEZONE, *bounds)
                return pgcopy.copy_sql(connection, db.engine.dialect, query).decode()

            def cells(bounds: Bounds) -> str:
                query = pgcopy.stored_query(condition, campaigns, *bounds)
                return pgcopy.copy_sql(connection, db.engine.dialect, query, "binary").decode()

            return {
                "the export's query (stored cells)": [cells(part) for part in parts],
                "cells formatted at export (as in a zone without stored cells)": [
                    export(campaigns, part) for part in parts
                ],
                "the same without the campaigns column (no `subscriptions`)": [
                    export([], part) for part in parts
                ],
                "the 13 columns as stored, no expression": [stored(STORED, p) for p in parts],
                "every column as stored (`SELECT *`)": [stored("*", p) for p in parts],
            }
        finally:
            raw.close()


def stored(columns: str, bounds: Bounds) -> str:
    """COPY of the columns as stored, for the volunteers the export takes, in id order."""
    after, upto = bounds
    where = ["status <> 'erased'"]
    where += [f"id > {after}"] if after is not None else []
    where += [f"id <= {upto}"] if upto is not None else []
    select = f"SELECT {columns} FROM volunteers WHERE {' AND '.join(where)} ORDER BY id"  # noqa: S608 - ids and fixed names
    return f"COPY ({select}) TO STDOUT WITH (FORMAT csv)"


def timed(server: str, statements: list[str]) -> float:
    """Two psql processes copy every other statement, output to /dev/null; seconds to the end."""
    setup = f"SET jit = off; SET TimeZone = '{TIMEZONE}'; SET DateStyle = ISO"
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", f"{server}/{DATABASE}", "-c", setup]
    started = time.perf_counter()
    running = [
        subprocess.Popen(
            [*psql, *(arg for s in statements[i::STREAMS] for arg in ("-c", s))],
            stdout=subprocess.DEVNULL,
        )
        for i in range(STREAMS)
    ]
    codes = [process.wait() for process in running]
    seconds = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"psql failed: {codes}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Time each variant --rounds times, interleaved, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL URL, no database")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with psycopg.connect(f"{args.server}/{DATABASE}") as conn:
        low, high, rows = conn.execute(
            "SELECT min(id), max(id), count(*) FILTER (WHERE status <> 'erased') FROM volunteers"
        ).fetchone() or (None, None, 0)
    if not rows:
        raise SystemExit(f"{DATABASE} is empty: run bench/admin.py --keep first")
    variants = copy_statements(f"{args.server}/{DATABASE}", pgcopy.segments(low, high))
    results: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(1, args.rounds + 1):
        for name, statements in variants.items():
            seconds = timed(args.server, statements)
            results[name].append(seconds)
            print(f"round {round_}: {name}: {seconds:.2f} s", file=sys.stderr, flush=True)
    print(
        f"{rows:,} volunteers, {STREAMS} psql processes each copying every other segment of"
        f" {pgcopy.SEGMENT:,} ids, {args.rounds} rounds\n"
    )
    print("| what | seconds, each round | median s | rows/s (median) |")
    print("|---|---|---:|---:|")
    for name, runs in results.items():
        median = statistics.median(runs)
        each = ", ".join(f"{s:.2f}" for s in runs)
        print(f"| {name} | {each} | {median:.2f} | {rows / median:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
