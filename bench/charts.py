"""Draw the benchmark charts in docs/charts/ from the figures the benches wrote to docs/bench-data/.

    .venv/bin/python bench/charts.py          # after `make bench` (each bench writes its JSON)

A chart is drawn for each data file present; a missing one is named on stderr and skipped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: draw straight to PNG
import matplotlib.pyplot as plt  # after choosing the backend

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "bench-data"
CHARTS = ROOT / "docs" / "charts"
BLUE, GREY, RED = "#1f6fb2", "#9aa5b1", "#c0392b"


def _bars(ax: Any, labels: list[str], values: list[float], colours: list[str], unit: str) -> None:
    bars = ax.bar(labels, values, color=colours)
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(
            f"{value:,.0f}{unit}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.spines[["top", "right"]].set_visible(False)


def webhook(data: dict[str, Any]) -> plt.Figure:
    """Throughput and latency of the webhook against hello-world, same gunicorn flags."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    hello, hook = data["hello"], data["webhook"]
    _bars(left, ["hello-world", "webhook"], [hello["req_s"], hook["req_s"]], [GREY, BLUE], "")
    left.set_title(f"requests a second (ratio {data['ratio']:.2f}, target 0.6)", fontsize=10)
    x = [0, 1]
    width = 0.38
    right.bar(
        [i - width / 2 for i in x],
        [hello["p50_ms"], hello["p99_ms"]],
        width,
        color=GREY,
        label="hello-world",
    )
    right.bar(
        [i + width / 2 for i in x],
        [hook["p50_ms"], hook["p99_ms"]],
        width,
        color=BLUE,
        label="webhook",
    )
    right.axhline(25, color=RED, linestyle="--", linewidth=1, label="p99 target 25 ms")
    right.set_xticks(x, ["p50", "p99"])
    right.set_title("latency, ms (32 connections)", fontsize=10)
    right.legend(fontsize=8, frameon=False)
    right.spines[["top", "right"]].set_visible(False)
    return fig


def processing(data: list[dict[str, Any]]) -> plt.Figure:
    """Calls processed a second as worker processes grow, with the empty-task baseline."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    workers = [r["workers"] for r in data]
    ax.plot(workers, [r["calls_per_s"] for r in data], "o-", color=BLUE, label="calls processed/s")
    ax.plot(
        workers,
        [r["empty_tasks_per_s"] for r in data],
        "s--",
        color=GREY,
        label="empty Celery tasks/s (baseline)",
    )
    ax.axhline(1500, color=RED, linestyle=":", linewidth=1, label="target 1,500 calls/s")
    for w, r in zip(workers, data, strict=True):
        ax.annotate(
            f"{r['calls_per_s']:,.0f}",
            (w, r["calls_per_s"]),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=9,
        )
    ax.set_xticks(workers)
    ax.set_xlabel("intake worker processes (2 CPUs)")
    ax.set_title(
        f"processing {data[0]['calls']:,} calls from {data[0]['callers']:,} callers", fontsize=10
    )
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def sending(data: dict[str, Any]) -> plt.Figure:
    """SMS sent in each second against the configured per-account rate."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    per_second = data["per_second"]
    ax.bar(range(len(per_second)), per_second, color=BLUE, width=0.9, label="requests at the fake")
    ax.axhline(
        data["rate"],
        color=RED,
        linestyle="--",
        linewidth=1,
        label=f"configured rate {data['rate']:g}/s",
    )
    ax.set_ylim(0, data["rate"] * 1.35)  # room for the legend above the bars
    ax.set_xlabel("second of the run")
    ax.set_title(
        f"sending: {data['sms_per_s']:,.0f} SMS/s against a {data['latency_ms']:g} ms provider",
        fontsize=10,
    )
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def export(data: dict[str, Any]) -> plt.Figure:
    """Export rows a second against bare COPY baselines of the same rows, same run."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    series = [item for item in data["series"] if item.get("chart", True)]
    labels = [item["label"].replace(": ", ":\n", 1) for item in series]
    values = [item["rows_s"] for item in series]
    colours = [BLUE if item.get("ours") else GREY for item in series]
    _bars(ax, labels, values, colours, "")
    ax.axhline(500_000, color=RED, linestyle="--", linewidth=1, label="target 500,000 rows/s")
    ax.set_title(f"CSV export of {data['rows']:,} volunteers, rows a second", fontsize=10)
    ax.set_ylim(0, max(*values, 500_000) * 1.2)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.tick_params(axis="x", labelsize=8)
    return fig


def admin(data: dict[str, Any]) -> plt.Figure:
    """p50 and p95 of the admin's queries at a million volunteers."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = [q["name"] for q in data["queries"]]
    y = range(len(names))
    ax.barh(
        [i + 0.2 for i in y], [q["p95_ms"] for q in data["queries"]], 0.4, color=BLUE, label="p95"
    )
    ax.barh(
        [i - 0.2 for i in y], [q["p50_ms"] for q in data["queries"]], 0.4, color=GREY, label="p50"
    )
    ax.axvline(50, color=RED, linestyle="--", linewidth=1, label="target p95 50 ms")
    ax.set_yticks(list(y), names, fontsize=8)
    ax.set_xlabel("ms")
    ax.set_title(f"admin at {data['rows']:,} volunteers", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def latency(data: dict[str, Any]) -> plt.Figure:
    """p50 and p99 of both servers at each steady offered rate (bench/latency.py)."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    rates = [run["rate"] for run in data["rates"]]
    for server, colour, label in (("hello", GREY, "hello-world"), ("webhook", BLUE, "webhook")):
        for key, style in (("p99_ms", "-"), ("p50_ms", ":")):
            ax.plot(
                rates,
                [run[server][key] for run in data["rates"]],
                style,
                marker="o",
                color=colour,
                label=f"{label} {key.split('_')[0]}",
            )
    ax.axhline(
        data["max_p99_ms"], color=RED, linestyle="--", linewidth=1, label="p99 target (32 conns)"
    )
    ax.set_xlabel("offered requests a second (wrk, paced)")
    ax.set_ylabel("ms")
    ax.set_xticks(rates)
    ax.set_title("latency at steady rates, same gunicorn flags", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


CHARTS_BY_NAME: dict[str, Callable[[Any], plt.Figure]] = {
    "webhook": webhook,
    "latency": latency,
    "processing": processing,
    "sending": sending,
    "export": export,
    "admin": admin,
}


def main() -> int:
    CHARTS.mkdir(parents=True, exist_ok=True)
    drawn = 0
    for name, draw in CHARTS_BY_NAME.items():
        source = DATA / f"{name}.json"
        if not source.exists():
            print(f"charts: no {source.relative_to(ROOT)}, skipped", file=sys.stderr)
            continue
        figure = draw(json.loads(source.read_text()))
        figure.tight_layout()
        target = CHARTS / f"{name}.png"
        figure.savefig(target, dpi=110)
        plt.close(figure)
        print(f"charts: {target.relative_to(ROOT)}", file=sys.stderr)
        drawn += 1
    return 0 if drawn else 1


if __name__ == "__main__":
    sys.exit(main())
