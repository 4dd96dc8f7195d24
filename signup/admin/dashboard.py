"""Dashboard figures, scoped like everything else: calls over time, the funnel, places.

Read through signup.database.reads: from the read replica when one is configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask_babel import LazyString, get_locale, lazy_gettext
from sqlalchemy import func, select

from signup import clock
from signup.admin.access import Access
from signup.calls.models import Call, CallOutcome
from signup.campaigns.models import Campaign
from signup.database import local_bucket, reads
from signup.i18n import DEFAULT_LANGUAGE
from signup.messaging.models import Message, MessageStatus
from signup.volunteers.models import Subscription, Volunteer, VolunteerStatus


@dataclass(slots=True)
class Dashboard:
    """What the dashboard shows."""

    calls_by_hour: list[tuple[str, int]] = field(default_factory=list)
    calls_by_day: list[tuple[str, int]] = field(default_factory=list)
    funnel: list[tuple[str | LazyString, int]] = field(default_factory=list)
    by_state: list[tuple[str, int]] = field(default_factory=list)
    by_district: list[tuple[str, int]] = field(default_factory=list)
    campaigns: list[tuple[str, str, int, int]] = field(default_factory=list)
    unrouted: list[tuple[str, int]] = field(default_factory=list)


def _buckets(
    access: Access,
    since: datetime,
    zone: ZoneInfo,
    unit: str,
    label: str,
    step: timedelta,
    count: int,
) -> list[tuple[str, int]]:
    """Calls counted per local hour or day, grouped in the database."""
    bucket = local_bucket(Call.received_at, unit, zone, since)
    counts = dict(
        reads.execute(
            select(bucket, func.count())
            .where(Call.received_at >= since, access.calls_condition())
            .group_by(bucket)
        ).all()
    )
    key_format = "%Y-%m-%d %H" if unit == "hour" else "%Y-%m-%d"
    start = since.astimezone(zone)
    moments = [start + step * i for i in range(count)]
    locale = get_locale() or DEFAULT_LANGUAGE  # month names in the reader's language
    return [
        (
            format_datetime(m, label, tzinfo=zone, locale=locale),
            int(counts.get(m.strftime(key_format), 0)),
        )
        for m in moments
    ]


def build(access: Access, timezone: str) -> Dashboard:
    """Every figure of the dashboard for this account."""
    zone = ZoneInfo(timezone)
    now = clock.now()
    local = now.astimezone(zone)
    hour_start = local.replace(minute=0, second=0, microsecond=0) - timedelta(hours=47)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=29)
    board = Dashboard()
    board.calls_by_hour = _buckets(
        access, hour_start, zone, "hour", "dd MMM HH:00", timedelta(hours=1), 48
    )
    board.calls_by_day = _buckets(access, day_start, zone, "day", "dd MMM", timedelta(days=1), 30)

    scope = access.condition() & (Volunteer.status != VolunteerStatus.ERASED)
    calls_in_scope = access.calls_condition()
    # A message of a campaign beyond the scope is not counted, even to a person within it.
    in_scope_messages = Message.volunteer_id.in_(
        select(Volunteer.id).where(scope)
    ) & access.campaign_condition(Message.campaign_id)
    sent_states = [MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED]
    board.funnel = [
        (
            lazy_gettext("Missed calls"),
            reads.scalar(select(func.count()).select_from(Call).where(calls_in_scope)) or 0,
        ),
        (
            lazy_gettext("Unique callers"),
            reads.scalar(select(func.count(func.distinct(Call.caller))).where(calls_in_scope)) or 0,
        ),
        (
            lazy_gettext("Volunteers"),
            reads.scalar(select(func.count()).select_from(Volunteer).where(scope)) or 0,
        ),
        (
            lazy_gettext("SMS sent"),
            reads.scalar(
                select(func.count())
                .select_from(Message)
                .where(in_scope_messages, Message.status.in_(sent_states))
            )
            or 0,
        ),
        (
            lazy_gettext("Delivered"),
            reads.scalar(
                select(func.count())
                .select_from(Message)
                .where(in_scope_messages, Message.status == MessageStatus.DELIVERED)
            )
            or 0,
        ),
        (
            lazy_gettext("Opted out"),
            reads.scalar(
                select(func.count())
                .select_from(Volunteer)
                .where(scope, access.derived().status_is(VolunteerStatus.OPTED_OUT))
            )
            or 0,
        ),
    ]
    place = func.coalesce(Volunteer.state, "?")
    board.by_state = [
        (s, n)
        for s, n in reads.execute(
            select(place, func.count())
            .where(scope)
            .group_by(place)
            .order_by(func.count().desc())
            .limit(20)
        )
    ]
    district = func.coalesce(Volunteer.district, "?")
    board.by_district = [
        (f"{d} ({s})", n)
        for s, d, n in reads.execute(
            select(place, district, func.count())
            .where(scope)
            .group_by(place, district)
            .order_by(func.count().desc())
            .limit(20)
        )
    ]
    rows = reads.execute(
        select(Campaign.slug, Campaign.name, Subscription.status, func.count())
        .join(Subscription, Subscription.campaign_id == Campaign.id)
        .join(Volunteer, Volunteer.id == Subscription.volunteer_id)
        .where(scope, access.campaign_condition(Campaign.id))
        .group_by(Campaign.slug, Campaign.name, Subscription.status)
    )
    per_campaign: dict[tuple[str, str], list[int]] = {}
    for slug, name, status, n in rows:
        counts = per_campaign.setdefault((slug, name), [0, 0])
        counts[0 if status == VolunteerStatus.ACTIVE else 1] += n
    board.campaigns = [(slug, name, a, o) for (slug, name), (a, o) in sorted(per_campaign.items())]
    if access.is_full_admin:  # calls to no campaign are in no scope
        board.unrouted = [
            (called or "(none)", n)
            for called, n in reads.execute(
                select(Call.called, func.count())
                .where(Call.outcome == CallOutcome.UNROUTED)
                .group_by(Call.called)
                .order_by(func.count().desc())
                .limit(20)
            )
        ]
    return board
