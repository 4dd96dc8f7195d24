"""bench/sampler.py: slow tenths are found, and set beside what the machine did in them."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def sampler() -> ModuleType:
    """The benchmark helper, loaded from its file (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_sampler", BENCH / "sampler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def counters(sampler: ModuleType, *, busy: float, steal: float = 0.0) -> object:
    """A tenth of a second on two CPUs: `busy` and `steal` seconds, the rest idle."""
    return sampler.Counters(
        busy=busy, idle=0.2 - busy - steal, iowait=0.0, steal=steal, cpu_some=0.0, io_full=0.0
    )


def test_a_stall_is_found_with_the_steal_in_it(sampler: ModuleType) -> None:
    answers = {tick: 200 for tick in range(1000, 1030)}
    answers[1010] = answers[1011] = 10  # a 0.2 s stall
    answers[1020] = 60  # slower, but above a quarter of the median
    deltas = {tick: counters(sampler, busy=0.19, steal=0.002) for tick in answers}
    deltas[1010] = deltas[1011] = counters(sampler, busy=0.05, steal=0.1)

    found = sampler.stalls(answers, deltas)

    assert found.tenths == 28  # the first and last tenth are partial and left out
    assert found.slow == 2
    assert found.median_answers == 200
    assert found.slow_runs == [(pytest.approx(1.0), pytest.approx(0.2))]
    assert found.slow_share["steal"] == pytest.approx(50.0)
    assert found.rest_share["steal"] == pytest.approx(1.0)
    assert found.phase_share["steal"] == pytest.approx(100 * (0.052 + 0.2) / 5.6)
    assert "2 of 28 tenths" in found.describe()
    assert "0.2 s at 1.0 s" in found.describe()


def test_a_tenth_without_answers_is_a_stall(sampler: ModuleType) -> None:
    answers = {tick: 100 for tick in range(10) if tick != 5}
    found = sampler.stalls(answers, {})
    assert found.slow == 1
    assert found.slow_share == {}  # nothing sampled: no shares, and no division by zero
    assert sampler.stalls({1: 5, 2: 5}, {}) is None  # too short to judge


def test_an_even_run_has_no_stalls(sampler: ModuleType) -> None:
    answers = {tick: 100 + tick % 3 for tick in range(50)}
    deltas = {tick: counters(sampler, busy=0.2) for tick in answers}
    found = sampler.stalls(answers, deltas)
    assert found.slow == 0
    assert found.describe().startswith("no tenth of a second below 25%")
    assert found.rest_share["idle"] == pytest.approx(0.0)


def test_the_sampler_keys_tenths_as_the_load_generator_does(sampler: ModuleType) -> None:
    """Each delta is keyed by floor(monotonic / 0.1), wrk's bucket for the same moment."""
    before = int(time.monotonic() / sampler.TICK)
    with sampler.Sampler() as running:
        time.sleep(0.35)
    after = int(time.monotonic() / sampler.TICK)
    keys = sorted(running.deltas)
    assert len(keys) >= 2
    assert before <= keys[0] and keys[-1] <= after
    assert keys == list(range(keys[0], keys[-1] + 1))
    total = sum(d.busy + d.idle + d.iowait + d.steal for d in running.deltas.values())
    assert total > 0  # the machine's CPUs were counted
