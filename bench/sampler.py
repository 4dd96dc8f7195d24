"""What the machine did each tenth of a second of a benchmark, to tell what a stall waited on.

A benchmark's tail can come from our code, from PostgreSQL flushing to disk, or from the host
giving this guest's CPUs to someone else (steal time on a shared KVM machine). `Sampler` reads
/proc/stat and the kernel's pressure files (PSI) ten times a second in a thread; `stalls` sets
those samples beside a load generator's answers per tenth and compares the slow tenths with the
rest. Reading the files costs about 0.1 ms a sample.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

TICK = 0.1  # seconds per sample, and per bucket of the load generator's timeline
CLK_TCK = os.sysconf("SC_CLK_TCK")  # /proc/stat counts in these ticks a second (USER_HZ)
SLOW = 0.25  # a tenth is slow when it answers fewer than this share of the median tenth


@dataclass(frozen=True, slots=True)
class Counters:
    """Cumulative machine counters at one moment, in seconds."""

    busy: float  # user, nice, system, irq and softirq over all CPUs
    idle: float
    iowait: float
    steal: float  # time the hypervisor ran something else while this guest wanted a CPU
    cpu_some: float  # PSI: time some runnable task waited for a CPU
    io_full: float  # PSI: time every non-idle task waited on I/O at once

    def __sub__(self, other: Counters) -> Counters:
        return Counters(*(getattr(self, name) - getattr(other, name) for name in self.__slots__))


def _pressure(resource: str, kind: str) -> float:
    """A PSI total in seconds, 0 where the kernel has no pressure files."""
    try:
        text = Path(f"/proc/pressure/{resource}").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(kind):
            return int(line.rsplit("total=", 1)[1]) / 1e6
    return 0.0


def read_counters() -> Counters:
    """The machine's counters now."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return Counters(
        busy=(user + nice + system + irq + softirq) / CLK_TCK,
        idle=idle / CLK_TCK,
        iowait=iowait / CLK_TCK,
        steal=steal / CLK_TCK,
        cpu_some=_pressure("cpu", "some"),
        io_full=_pressure("io", "full"),
    )


class Sampler:
    """Counters per tenth of a second (keyed by floor(monotonic / TICK)) while in the block."""

    def __init__(self) -> None:
        self.deltas: dict[int, Counters] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        before = read_counters()
        tick = int(time.monotonic() / TICK)
        while not self._stop.is_set():
            tick += 1
            self._stop.wait(max(0.0, tick * TICK - time.monotonic()))
            now = read_counters()
            self.deltas[tick - 1] = now - before  # what happened during tenth tick - 1
            before = now


@dataclass(frozen=True, slots=True)
class Stalls:
    """Slow tenths of a measured phase against the others, and what the machine did in each."""

    tenths: int  # tenths judged: from the first answer's to the last's, both left out
    slow: int  # tenths that answered fewer than SLOW of the median tenth
    median_answers: float  # answers in the median tenth
    slow_runs: list[tuple[float, float]]  # (start s into the phase, length s) of slow stretches
    slow_share: Mapping[str, float]  # per cent of the machine's CPU time in the slow tenths
    rest_share: Mapping[str, float]  # the same over the other tenths
    phase_share: Mapping[str, float]  # the same over every tenth judged

    def describe(self) -> str:
        """One markdown line on the slow tenths and what the machine did in them."""

        def shares(values: Mapping[str, float]) -> str:
            return ", ".join(f"{name} {share:.1f} %" for name, share in values.items())

        if not self.slow:
            return (
                f"no tenth of a second below {SLOW:.0%} of the median "
                f"({self.median_answers:.0f} answers a tenth); {shares(self.phase_share)}"
            )

        longest = sorted(self.slow_runs, key=lambda run: -run[1])[:3]
        where = ", ".join(f"{length:.1f} s at {start:.1f} s" for start, length in longest)
        return (
            f"{self.slow} of {self.tenths} tenths of a second below {SLOW:.0%} of the median "
            f"({self.median_answers:.0f} answers a tenth); longest: {where}. Slow tenths: "
            f"{shares(self.slow_share)}; the rest: {shares(self.rest_share)}"
        )


def stalls(answers: Mapping[int, int], deltas: Mapping[int, Counters]) -> Stalls | None:
    """Compare the slow tenths of `answers` (answers per tenth, keyed as Sampler's) with the rest.

    The first and last tenth are left out: the phase starts and ends inside them.
    """
    keys = sorted(answers)
    if len(keys) < 5:
        return None
    span = range(keys[0] + 1, keys[-1])
    counts = [answers.get(tick, 0) for tick in span]
    median = statistics.median(counts)
    slow_ticks = [tick for tick, count in zip(span, counts, strict=True) if count < SLOW * median]
    slow_set = set(slow_ticks)
    runs: list[tuple[float, float]] = []
    for tick in slow_ticks:
        start = (tick - keys[0]) * TICK
        if runs and tick - 1 in slow_set:
            runs[-1] = (runs[-1][0], runs[-1][1] + TICK)
        else:
            runs.append((start, TICK))
    return Stalls(
        tenths=len(counts),
        slow=len(slow_ticks),
        median_answers=median,
        slow_runs=runs,
        slow_share=_shares([deltas[t] for t in span if t in slow_set and t in deltas]),
        rest_share=_shares([deltas[t] for t in span if t not in slow_set and t in deltas]),
        phase_share=_shares([deltas[t] for t in span if t in deltas]),
    )


def _shares(samples: list[Counters]) -> dict[str, float]:
    """Steal, iowait, idle and the two pressures as per cent of the CPU time sampled."""
    if not samples:
        return {}
    total = sum(s.busy + s.idle + s.iowait + s.steal for s in samples) or 1.0
    wall = len(samples) * TICK

    def share(name: str) -> float:
        return 100 * sum(getattr(s, name) for s in samples) / total

    return {
        "steal": share("steal"),
        "iowait": share("iowait"),
        "idle": share("idle"),
        "CPU pressure": 100 * sum(s.cpu_some for s in samples) / wall,
        "I/O full pressure": 100 * sum(s.io_full for s in samples) / wall,
    }
