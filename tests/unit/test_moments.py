"""Every typed date and time goes through one parser, bounded to 1900-2999 (review finding 1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from signup import moments
from signup.errors import ValidationError

IST = timezone(timedelta(hours=5, minutes=30))
# Every parser of typed dates or times: a new one must be listed here.
PARSERS: list[Callable[[str, str], Any]] = [moments.parse_day, moments.parse_moment]
REFUSED = [
    "",
    "  ",
    "0001-01-01",
    "0001-01-01T00:00+05:30",
    "1899-12-31",
    "1899-12-31T23:59",
    "3000-01-01",
    "9999-12-31T23:59",
    "9999-12-31T23:59-23:59",
    "2026-02-30",
    "2026-05-01T25:00",
    "२०२६-११-२१",
    "２０２６-１１-２１",
    "٢٠٢٦-١١-٢١",
    "tomorrow",
    "2026-05-01\x00",
]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("raw", REFUSED)
def test_odd_or_far_off_values_are_one_line_refusals(parse: Callable[..., Any], raw: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse(raw, "when")
    message = str(refused.value)
    assert message.startswith("when must be") and "\n" not in message


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("raw", ["1900-01-01", "2026-11-21", "2999-12-31"])
def test_dates_within_the_bounds_are_read(parse: Callable[..., Any], raw: str) -> None:
    assert parse(raw, "when").isoformat().startswith(raw)


def test_a_naive_time_takes_the_given_zone_and_an_explicit_offset_wins() -> None:
    assert moments.parse_moment("2026-05-01T18:00", "x", IST) == datetime(
        2026, 5, 1, 18, tzinfo=IST
    )
    assert moments.parse_moment("2026-05-01T18:00", "x").tzinfo is None
    utc = moments.parse_moment("2026-05-01T18:00+00:00", "x", IST)
    assert utc.utcoffset() == timedelta(0)
    assert moments.parse_day("2026-11-21", "x") == date(2026, 11, 21)
