"""The volunteers CSV: contract columns, streamed in keyset batches, formula-safe, with BOM."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import ColumnElement, SQLColumnExpression, select, true

from signup.campaigns.models import Campaign
from signup.database import dialect_name, id_in
from signup.errors import ValidationError
from signup.extensions import db
from signup.phones import normalise
from signup.volunteers.models import Subscription, Volunteer, VolunteerStatus

COLUMNS = (
    "phone",
    "name",
    "status",
    "campaigns",
    "call_count",
    "first_call_at",
    "last_call_at",
    "consent_at",
    "opted_out_at",
    "state",
    "district",
    "pincode",
    "language",
)
BOM = "\ufeff"
BATCH = 5000
MIN_NAME_SEARCH = 3  # shorter fragments match too much to use the trigram index
NUMBER_ENDING = re.compile(r"^\d{4,9}$")  # the last digits of a number, as people quote them


def number_ending(query: str) -> str | None:
    """The digits of a search for the end of a number (4 to 9 digits, spaces or dashes
    allowed, any script's digits), else None."""
    digits = "".join(
        str(unicodedata.digit(ch)) if ch.isdigit() else ch for ch in query.strip() if ch not in " -"
    )
    return digits if NUMBER_ENDING.match(digits) else None


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Derived:
    """A volunteer's status, call counts and consent times as one account's scope sees them.

    `scoped` is False when they are the volunteer row's own (global) columns, which the
    export's stored cells hold; True when worked out from the scope's campaigns alone.
    """

    status: SQLColumnExpression[Any]
    call_count: SQLColumnExpression[Any]
    first_call_at: SQLColumnExpression[Any]
    last_call_at: SQLColumnExpression[Any]
    consent_at: SQLColumnExpression[Any]
    opted_out_at: SQLColumnExpression[Any]
    scoped: bool = False
    subscribed: ColumnElement[bool] | None = None  # active in the scope: what `status` reads

    def status_is(self, value: str) -> ColumnElement[bool]:
        """`status == value`, written so that the planner can use the scope's semi-join.

        The same rule as a scoped `status`: active when `subscribed`, else opted out if the
        row says active, else the row's own status.
        """
        if self.subscribed is None:
            return self.status == value
        if value == VolunteerStatus.ACTIVE:
            return self.subscribed
        if value == VolunteerStatus.OPTED_OUT:
            left = (VolunteerStatus.ACTIVE.value, VolunteerStatus.OPTED_OUT.value)
            return ~self.subscribed & Volunteer.status.in_(left)
        return ~self.subscribed & (Volunteer.status == value)

    @classmethod
    def stored(cls) -> Derived:
        """The volunteer row's own columns: what an account limited to no campaign sees."""
        v = Volunteer
        return cls(
            v.status, v.call_count, v.first_call_at, v.last_call_at, v.consent_at, v.opted_out_at
        )

    def labelled(self) -> list[ColumnElement[Any]]:
        """The columns, each named as the volunteer row's column it stands for."""
        return [getattr(self, name).label(name) for name in DERIVED]


DERIVED = ("status", "call_count", "first_call_at", "last_call_at", "consent_at", "opted_out_at")


class Scope(Protocol):
    """Limits what an account sees (signup.admin.access.Access)."""

    def derived(self) -> Derived:
        """The volunteer's per-scope status, counts and times."""
        ...

    def condition(self) -> ColumnElement[bool]:
        """The WHERE clause for this account's volunteers."""
        ...

    def campaign_condition(self, campaign_id: Any) -> ColumnElement[bool]:
        """The WHERE clause for this account's campaigns, on a campaign id column."""
        ...


@dataclass(frozen=True, slots=True)
class VolunteerFilter:
    """The list's and the export's filters, and the scope of the account asking."""

    campaign: str | None = None
    status: str | None = None
    q: str | None = None
    state: str | None = None
    district: str | None = None
    joined_from: date | None = None
    joined_to: date | None = None
    scope: Scope | None = None

    def condition(self) -> ColumnElement[bool]:
        """The WHERE clause for these filters; raises ValidationError on a bad value."""
        clause: ColumnElement[bool] = Volunteer.status != VolunteerStatus.ERASED
        if self.scope is not None:
            clause = clause & self.scope.condition()
        if self.state:
            clause = clause & (Volunteer.state == self.state)
        if self.district:
            clause = clause & (Volunteer.district == self.district)
        zone = ZoneInfo(current_app.config["SIGNUP_TIMEZONE"])
        if self.joined_from:
            start = datetime.combine(self.joined_from, time(), tzinfo=zone)
            clause = clause & (Volunteer.created_at >= start)
        if self.joined_to:
            end = datetime.combine(self.joined_to + timedelta(days=1), time(), tzinfo=zone)
            clause = clause & (Volunteer.created_at < end)
        if self.status:
            listed = [s.value for s in VolunteerStatus if s is not VolunteerStatus.ERASED]
            if self.status not in listed:
                raise ValidationError(f"status must be one of {', '.join(listed)}")
            clause = clause & self.derived().status_is(self.status)
        if self.campaign:
            campaign_id = db.session.scalar(
                select(Campaign.id).where(Campaign.slug == self.campaign, self.campaigns_seen())
            )
            if campaign_id is None:
                raise ValidationError(f"no campaign with slug '{self.campaign}'")
            clause = clause & Volunteer.id.in_(
                select(Subscription.volunteer_id).where(Subscription.campaign_id == campaign_id)
            )
        if self.q and self.q.strip():
            phone = normalise(self.q)
            ending = number_ending(self.q)
            if phone.e164:
                clause = clause & (Volunteer.phone == phone.e164)
            elif ending:
                clause = clause & Volunteer.phone.like("%" + ending)
            else:
                if len(self.q.strip()) < MIN_NAME_SEARCH:
                    raise ValidationError(
                        f"search for a name with at least {MIN_NAME_SEARCH} characters"
                    )
                pattern = (
                    "%"
                    + self.q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                    + "%"
                )
                clause = clause & Volunteer.name.ilike(pattern, escape="\\")
        return clause

    def derived(self) -> Derived:
        """The status, counts and times the asking account sees (Access.derived)."""
        return Derived.stored() if self.scope is None else self.scope.derived()

    def campaigns_seen(self) -> ColumnElement[bool]:
        """The WHERE clause on Campaign.id for the campaigns the asking account sees."""
        return true() if self.scope is None else self.scope.campaign_condition(Campaign.id)


def safe_cell(value: str) -> str:
    """Neutralise a text cell that a spreadsheet would run as a formula; drop carriage returns."""
    return ("'" + value if value.startswith(FORMULA_PREFIXES) else value).replace("\r", "")


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).isoformat(timespec="seconds") if value else ""


def campaign_slugs(
    volunteer_ids: list[int],
    execute: Callable[[Any], Any] | None = None,
    seen: ColumnElement[bool] | None = None,
) -> dict[int, list[str]]:
    """Each volunteer's campaign slugs, sorted, for one batch of volunteers.

    `execute` runs the query (the admin list passes the replica's); the session's by default.
    `seen` limits the campaigns to those the account sees (VolunteerFilter.campaigns_seen).
    """
    slugs: dict[int, list[str]] = defaultdict(list)
    rows = (execute or db.session.execute)(
        select(Subscription.volunteer_id, Campaign.slug)
        .join(Campaign, Campaign.id == Subscription.campaign_id)
        .where(id_in(Subscription.volunteer_id, volunteer_ids), true() if seen is None else seen)
        .order_by(Campaign.slug)
    )
    for volunteer_id, slug in rows:
        slugs[volunteer_id].append(slug)
    return slugs


def iter_rows(filters: VolunteerFilter, timezone: str) -> Iterator[list[Any]]:
    """Yield one list of cells per volunteer, in id order, never holding more than a batch."""
    zone = ZoneInfo(timezone)
    condition = filters.condition()
    v = Volunteer
    last_id = 0
    while True:
        batch = db.session.execute(
            select(
                v.id,
                v.phone,
                v.name,
                *filters.derived().labelled(),
                v.state,
                v.district,
                v.pincode,
                v.language,
            )
            .where(condition, v.id > last_id)
            .order_by(v.id)
            .limit(BATCH)
        ).all()
        if not batch:
            return
        slugs = campaign_slugs([row.id for row in batch], seen=filters.campaigns_seen())
        for row in batch:
            yield [
                row.phone,
                safe_cell(row.name or ""),
                safe_cell(row.status),
                safe_cell(";".join(slugs.get(row.id, []))),
                row.call_count,
                _when(row.first_call_at, zone),
                _when(row.last_call_at, zone),
                _when(row.consent_at, zone),
                _when(row.opted_out_at, zone),
                safe_cell(row.state or ""),
                safe_cell(row.district or ""),
                safe_cell(row.pincode or ""),
                safe_cell(row.language or ""),
            ]
        last_id = batch[-1].id
        db.session.expire_all()


class CsvExport:
    """The CSV as UTF-8 chunks (BOM and header first); `rows` counts the rows written.

    On PostgreSQL the database writes it (COPY ... TO STDOUT; see signup.volunteers.pgcopy,
    which splits the ids over two connections); elsewhere Python does, in keyset batches.
    Both give the same bytes (a test compares them).
    """

    def __init__(self, filters: VolunteerFilter, timezone: str) -> None:
        self.filters = filters
        self.timezone = timezone
        self.rows = 0

    def __iter__(self) -> Iterator[bytes]:
        if dialect_name() == "postgresql":
            from signup.volunteers.pgcopy import copy_export  # it imports this module

            yield (BOM + ",".join(COLUMNS) + "\n").encode()
            condition, seen = self.filters.condition(), self.filters.campaigns_seen()
            derived = self.filters.derived()
            for rows, block in copy_export(condition, self.timezone, seen, derived):
                self.rows += rows
                yield block
        else:
            yield BOM.encode()
            yield from self._python()

    def _python(self) -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in iter_rows(self.filters, self.timezone):
            writer.writerow(row)
            self.rows += 1
            if self.rows % 1000 == 0:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()
