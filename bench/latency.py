"""The webhook's latency at steady offered rates, from well below this machine's capacity to it.

bench/webhook.py measures both servers as fast as they answer, where with 32 connections the
latency is set by the throughput (32 / rate). A drive is sized so that web machines run at
about half their capacity, so what matters there is the latency at a given rate. This runs
bench/webhook.py's two servers, paced by wrk at each rate in turn (`--rate`), on one fresh
migrated database, checks every answer, and checks at the end that the `calls` rows equal
the webhook's 200 answers over all rates.

    .venv/bin/python bench/latency.py                     # 500, 1000, 1500 and 2000 req/s
    .venv/bin/python bench/latency.py --rates 250,1000 --json docs/bench-data/latency.json

Needs wrk (`apt-get install -y wrk`). Prints a markdown table; exit status 0 when every answer
and the row count were right, 1 otherwise (latency targets are for bench/webhook.py to judge).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import webhook
from webhook import Result, bench, figures, note, prepared, revision, run


def parse_rates(text: str) -> list[float]:
    """A comma-separated list of positive rates, e.g. 500,1000."""
    rates = [float(part) for part in text.split(",") if part.strip()]
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("rates must be positive numbers, comma-separated")
    return rates


def parse_args(argv: Sequence[str] | None) -> tuple[webhook.Options, list[float]]:
    """This script's options, and bench/webhook.py's for the rest."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=parse_rates, default=[500.0, 1000.0, 1500.0, 2000.0])
    parser.add_argument("--duration", type=float, default=12.0, help="measured s per server")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up s per server")
    parser.add_argument("--json", type=Path, help="also write the figures here (for charts)")
    args = parser.parse_args(argv)
    options = webhook.parse_args(
        ["--client", "wrk", "--duration", str(args.duration), "--warmup", str(args.warmup)]
    )
    return replace(options, json_path=args.json), args.rates


def main(argv: Sequence[str] | None = None) -> int:
    """Both servers at each rate, one after the other; the table; the rows checked."""
    options, rates = parse_args(argv)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    runs: list[tuple[float, Result, Result]] = []
    with prepared(options) as (env, workdir):
        for rate in rates:
            paced = replace(options, rate=rate)
            note(f"paced at {rate:,.0f} req/s")
            hello = bench("hello", "hello:app", paced, env, workdir)
            hook = bench("webhook", "signup:create_app()", paced, env, workdir)
            runs.append((rate, hello, hook))
        rows = options.database.count_calls()
    answered = sum(hook.warmup.ok + hook.measured.ok for _, _, hook in runs)
    clean = all(t.clean for _, *servers in runs for r in servers for t in (r.warmup, r.measured))
    report(options, runs, load, rows, answered, clean)
    if options.json_path:
        data = {
            "rates": [
                {"rate": rate, "hello": figures(hello), "webhook": figures(hook)}
                for rate, hello, hook in runs
            ],
            "max_p99_ms": options.max_p99,
            "rows_match": rows == answered,
        }
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(json.dumps(data, indent=2))
    return 0 if clean and rows == answered else 1


def report(
    options: webhook.Options,
    runs: list[tuple[float, Result, Result]],
    load: str,
    rows: int,
    answered: int,
    clean: bool,
) -> None:
    """The markdown table: each rate's answers per second and latency for both servers."""
    print(f"## Webhook latency at steady rates ({time.strftime('%Y-%m-%d %H:%M')})\n")
    print(
        f"- machine: {os.cpu_count()} CPUs, load average before the run {load}; code "
        f"{revision()}; gunicorn flags, both servers: `{' '.join(options.gunicorn_flags)}`"
    )
    print(
        f"- load: wrk, {options.connections} connections paced together at each rate; "
        f"{options.warmup:g} s warm-up and {options.duration:g} s measured per server and rate\n"
    )
    print(
        "| offered req/s | hello req/s | hello p50 / p99 ms | webhook req/s "
        "| webhook p50 / p99 ms | webhook server CPU µs/req | PostgreSQL CPU µs/req "
        "| steal in the webhook phase |"
    )
    print("|---:|---:|---|---:|---|---:|---:|---:|")
    for rate, hello, hook in runs:
        h, w = hello.measured, hook.measured
        steal = hook.stalls.phase_share.get("steal") if hook.stalls else None
        print(
            f"| {rate:,.0f} | {h.rate:,.0f} | {h.p50 * 1e3:.1f} / {h.p99 * 1e3:.1f} "
            f"| {w.rate:,.0f} | {w.p50 * 1e3:.1f} / {w.p99 * 1e3:.1f} "
            f"| {webhook.per_answer_us(hook.server_cpu, w)} "
            f"| {webhook.per_answer_us(hook.postgres_cpu, w)} "
            f"| {'-' if steal is None else f'{steal:.1f} %'} |"
        )
    print(
        f"\n- `calls` rows committed: {rows:,}; 200 answers from the webhook over all rates: "
        f"{answered:,}: " + ("equal" if rows == answered else "**MISMATCH**")
    )
    if not clean:
        print("- **some answers were not a 200 with the Reject TwiML, or never came**")


if __name__ == "__main__":
    run(main)
