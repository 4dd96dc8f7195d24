"""Dates and times typed by people (admin forms and the CLI), parsed in one place.

ISO 8601 in ASCII digits, years 1900 to 2999: an impossible or far-off value (year 1, whose
UTC offset overflows, or 9999) is a one-line ValidationError, never a traceback.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from flask_babel import lazy_gettext as _l

from signup.errors import ValidationError

EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)  # a day after LATEST still exists


def parse_day(raw: str, label: str) -> date:
    """A date like 2026-11-21 between EARLIEST and LATEST; ValidationError otherwise."""
    try:
        day = date.fromisoformat(raw.strip()) if raw.isascii() else None
    except ValueError:
        day = None
    if day is None or not EARLIEST <= day <= LATEST:
        raise ValidationError(
            _l("%(field)s must be a date like 2026-11-21, from 1900 to 2999", field=label)
        )
    return day


def parse_moment(raw: str, label: str, zone: tzinfo | None = None) -> datetime:
    """A time like 2026-05-01T18:00[+05:30] from 1900 to 2999; naive ones get `zone` if given."""
    try:
        moment = datetime.fromisoformat(raw.strip()) if raw.isascii() else None
    except ValueError:
        moment = None
    if moment is None or not EARLIEST <= moment.date() <= LATEST:
        raise ValidationError(
            _l("%(field)s must be a time like 2026-05-01T18:00, from 1900 to 2999", field=label)
        )
    return moment if moment.tzinfo is not None or zone is None else moment.replace(tzinfo=zone)
