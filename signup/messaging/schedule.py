"""When an SMS may go out: never inside the quiet hours or a campaign's blackout periods.

Pure functions of the time they are given, so tests inject the clock instead of sleeping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l

from signup.errors import ValidationError

WINDOW_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Window:
    """A daily local-time window, e.g. 22:00-06:00 (it may cross midnight)."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        """True when the local time falls inside the window (start included, end excluded)."""
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


def parse_window(raw: str | None) -> Window | None:
    """Parse `HH:MM-HH:MM`, or `off`/empty for no window; ValidationError otherwise."""
    if raw is None or raw.strip().lower() in {"", "off", "none"}:
        return None
    found = WINDOW_RE.match(raw.strip())
    if not found:
        raise ValidationError(
            _l("quiet hours must look like 22:00-06:00 or be 'off', not %(raw)s", raw=repr(raw))
        )
    sh, sm, eh, em = (int(part) for part in found.groups())
    if (sh, sm) == (eh, em):
        raise ValidationError(_l("quiet hours must not start and end at the same time"))
    return Window(time(sh, sm), time(eh, em))


def _window_end(moment: datetime, window: Window, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    end = datetime.combine(local.date(), window.end, tzinfo=zone)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(moment.tzinfo)


def next_send_time(
    now: datetime,
    *,
    quiet: Window | None,
    zone: ZoneInfo,
    blackouts: list[tuple[datetime, datetime]],
) -> datetime:
    """The earliest moment at or after `now` outside the quiet hours and every blackout."""
    moment = now
    for _ in range(len(blackouts) + 3):  # each pass moves past at least one obstacle
        moved = False
        for start, end in blackouts:
            if start <= moment < end:
                moment, moved = end, True
        if quiet is not None and quiet.contains(moment.astimezone(zone).time()):
            moment, moved = _window_end(moment, quiet, zone), True
        if not moved:
            return moment
    return moment
