"""The one source of the current time, so that tests can inject a clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return _now()


def set_clock(func: Callable[[], datetime] | None) -> None:
    """Replace the clock (tests); None restores the wall clock."""
    global _now
    _now = func if func is not None else (lambda: datetime.now(UTC))
