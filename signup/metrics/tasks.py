"""Celery task durations and failures, measured from Celery's signals (the tasks stay untouched).

task_prerun notes the start, task_postrun observes the duration with the task's final state
(success, failure, retry, ...), task_failure counts the exception's type. Works in every pool
process; in multiprocess mode the scrape adds them up.
"""

from __future__ import annotations

import time
from typing import Any

from celery import signals
from prometheus_client import Counter, Histogram

TASK_DURATION = Histogram(
    "signup_task_duration_seconds",
    "Time a Celery task took to run, by task name and outcome.",
    ["task", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
TASK_FAILURES = Counter(
    "signup_task_failures",
    "Celery tasks that raised, by task name and exception type.",
    ["task", "exception"],
)

_started: dict[str, float] = {}


def _name(task: Any) -> str:
    return str(getattr(task, "name", None) or "unknown")


def _prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


def _postrun(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    start = _started.pop(task_id, None) if task_id else None
    if start is None:
        return
    outcome = (state or "unknown").lower()
    TASK_DURATION.labels(task=_name(task), outcome=outcome).observe(time.perf_counter() - start)


def _failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    kind = type(exception).__name__ if exception is not None else "unknown"
    TASK_FAILURES.labels(task=_name(sender), exception=kind).inc()


def connect() -> None:
    """Listen to the task signals, once per process however many apps are built."""
    signals.task_prerun.connect(_prerun, weak=False, dispatch_uid="signup.metrics.prerun")
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="signup.metrics.postrun")
    signals.task_failure.connect(_failure, weak=False, dispatch_uid="signup.metrics.failure")
