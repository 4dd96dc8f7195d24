"""Quiet hours and blackouts as pure functions of an injected time."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from signup.errors import ValidationError
from signup.messaging import dlt
from signup.messaging.schedule import Window, next_send_time, parse_window

IST = ZoneInfo("Asia/Kolkata")
NIGHT = parse_window("22:00-06:00")


def ist(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=IST).astimezone(UTC)


@pytest.mark.parametrize(
    ("raw", "window"),
    [
        ("22:00-06:00", Window(time(22), time(6))),
        ("09:30-17:45", Window(time(9, 30), time(17, 45))),
        ("off", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_window(raw: str | None, window: Window | None) -> None:
    assert parse_window(raw) == window


@pytest.mark.parametrize("raw", ["22-06", "25:00-06:00", "10:00-10:00", "night"])
def test_bad_windows_are_refused(raw: str) -> None:
    with pytest.raises(ValidationError):
        parse_window(raw)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (ist(21, 21, 59), ist(21, 21, 59)),  # before the window: now
        (ist(21, 22, 0), ist(22, 6, 0)),  # the window starts: next morning
        (ist(21, 23, 30), ist(22, 6, 0)),
        (ist(22, 3, 0), ist(22, 6, 0)),  # after midnight: this morning
        (ist(22, 6, 0), ist(22, 6, 0)),  # the end is outside the window
    ],
)
def test_quiet_hours_cross_midnight(now: datetime, expected: datetime) -> None:
    assert next_send_time(now, quiet=NIGHT, zone=IST, blackouts=[]) == expected


def test_a_day_window_too() -> None:
    day = parse_window("09:00-17:00")
    assert next_send_time(ist(21, 12), quiet=day, zone=IST, blackouts=[]) == ist(21, 17)
    assert next_send_time(ist(21, 18), quiet=day, zone=IST, blackouts=[]) == ist(21, 18)


def test_blackouts_and_quiet_hours_chain() -> None:
    silence = (ist(21, 18), ist(23, 18))  # the 48 hours before a poll
    assert next_send_time(ist(21, 17), quiet=NIGHT, zone=IST, blackouts=[silence]) == ist(21, 17)
    assert next_send_time(ist(22, 12), quiet=NIGHT, zone=IST, blackouts=[silence]) == ist(23, 18)
    late = (ist(21, 18), ist(23, 23))  # ends inside the quiet hours: wait for the morning
    assert next_send_time(ist(22, 12), quiet=NIGHT, zone=IST, blackouts=[late]) == ist(24, 6)
    back_to_back = [(ist(21, 10), ist(21, 12)), (ist(21, 12), ist(21, 14))]
    assert next_send_time(ist(21, 11), quiet=None, zone=IST, blackouts=back_to_back) == ist(21, 14)


def test_dlt_match_reports_extra_text_after_the_last_literal() -> None:
    with pytest.raises(ValidationError, match="extra text at the end"):
        dlt.match("Welcome Asha. Bye now", "Welcome {#var#}. Bye")
    assert dlt.match("Welcome Asha. Bye", "Welcome {#var#}. Bye") == ["Asha"]
