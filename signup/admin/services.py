"""Admin rules: scoped keyset pages, a volunteer's history, edits, and the audit log."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, tuple_

from signup import clock
from signup.admin.access import Access
from signup.admin.models import AuditEntry
from signup.database import EPOCH, last_call_sort_key, reads

__all__ = [
    "Access",
    "AuditEntry",
    "Page",
    "audit",
    "campaigns_for",
    "edit",
    "erase",
    "history",
    "list_page",
    "opt_out",
]
from signup.calls.models import Call
from signup.campaigns.models import Campaign
from signup.errors import ValidationError
from signup.extensions import db
from signup.messaging.models import Message
from signup.users.models import User
from signup.volunteers import erasure, places
from signup.volunteers import services as volunteers
from signup.volunteers.export import VolunteerFilter, campaign_slugs
from signup.volunteers.models import (
    ConsentChannel,
    ConsentEvent,
    Subscription,
    Volunteer,
    VolunteerStatus,
)

PAGE_SIZE = 50
SORTS = ("joined", "oldest", "last_call")
PINCODE_RE = re.compile(r"^[1-9]\d{5}$")


def list_columns(filters: VolunteerFilter) -> list[Any]:
    """The list's columns: status, calls and last call as the asking account sees them."""
    derived = filters.derived()
    return [
        Volunteer.id,
        Volunteer.phone,
        Volunteer.name,
        derived.status.label("status"),
        derived.call_count.label("call_count"),
        derived.last_call_at.label("last_call_at"),
        Volunteer.state,
        Volunteer.district,
        Volunteer.created_at,
    ]


@dataclass(slots=True)
class Page:
    """One page of the volunteer list and the cursor of the next one."""

    rows: list[Any]  # rows of list_columns
    campaigns: dict[int, list[str]]
    next_cursor: str | None


def _encode(*parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()


MAX_BIGINT = 2**63 - 1
STALE_CURSOR = "that page link is no longer valid"


def _decode(cursor: str) -> list[Any]:
    """A cursor's parts; anything but a JSON list (forged, cut, not base64) is refused."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise ValidationError(STALE_CURSOR) from exc
    if not isinstance(parts, list):
        raise ValidationError(STALE_CURSOR)
    return parts


def _cursor_id(value: Any) -> int:
    """A volunteer id from a cursor: an int a bigint column can be compared with."""
    if type(value) is not int or not 0 <= value <= MAX_BIGINT:
        raise ValidationError(STALE_CURSOR)
    return value


def _id_after(cursor: str) -> int:
    """The last id of the previous page, from an id-sorted cursor (`[id]`)."""
    parts = _decode(cursor)
    if len(parts) != 1:
        raise ValidationError(STALE_CURSOR)
    return _cursor_id(parts[0])


def _call_after(cursor: str) -> tuple[datetime, int]:
    """The last (last call, id) of the previous page, from a last-call cursor."""
    parts = _decode(cursor)
    if len(parts) != 2 or not isinstance(parts[0], str):
        raise ValidationError(STALE_CURSOR)
    try:
        at = datetime.fromisoformat(parts[0])
    except ValueError as exc:
        raise ValidationError(STALE_CURSOR) from exc
    if at.tzinfo is None:
        raise ValidationError(STALE_CURSOR)
    return at, _cursor_id(parts[1])


def list_page(
    filters: VolunteerFilter,
    *,
    sort: str = "joined",
    cursor: str | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """A page of volunteers, newest first by default, by keyset (fast on any deep page).

    Read from the replica when one is configured (signup.database.reads).
    """
    if sort not in SORTS:
        raise ValidationError(f"sort must be one of {', '.join(SORTS)}")
    query = select(*list_columns(filters)).where(filters.condition())
    last_call = last_call_sort_key(filters.derived().last_call_at)
    if sort == "joined":
        query = query.order_by(Volunteer.id.desc())
        if cursor:
            query = query.where(Volunteer.id < _id_after(cursor))
    elif sort == "oldest":
        query = query.order_by(Volunteer.id)
        if cursor:
            query = query.where(Volunteer.id > _id_after(cursor))
    else:
        query = query.order_by(last_call.desc(), Volunteer.id.desc())
        if cursor:
            at, last_id = _call_after(cursor)
            query = query.where(tuple_(last_call, Volunteer.id) < tuple_(at, last_id))
    rows = list(reads.execute(query.limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = (
            _encode(last.id)
            if sort != "last_call"
            else _encode((last.last_call_at or EPOCH).isoformat(), last.id)
        )
    seen = filters.campaigns_seen()
    slugs = campaign_slugs([r.id for r in rows], reads.execute, seen) if rows else {}
    return Page(rows, slugs, next_cursor)


@dataclass(slots=True)
class History:
    """Everything the volunteer page shows about one person."""

    volunteer: Volunteer
    seen: Any = None  # status, call_count and times as the account sees them (Access.derived)
    campaigns: list[tuple[Campaign, Subscription]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    messages: list[tuple[Message, str]] = field(default_factory=list)
    consent: list[tuple[ConsentEvent, str]] = field(default_factory=list)


def visible_volunteer(volunteer_id: int, access: Access, *, lock: bool = False) -> Volunteer:
    """The volunteer if this account may see them; ValidationError (404) otherwise.

    Locking takes the person's consent lock first (the order every consent change takes), so an
    opt-out or erasure here and a join being processed apply one after the other.
    """
    query = select(Volunteer).where(
        Volunteer.id == volunteer_id, access.condition(), Volunteer.status != VolunteerStatus.ERASED
    )
    if lock:
        phone = db.session.scalar(select(Volunteer.phone).where(Volunteer.id == volunteer_id))
        volunteers.lock_people([phone] if phone else [])
        query = query.with_for_update(key_share=True)
    volunteer = db.session.scalar(query)
    if volunteer is None:
        raise LookupError(volunteer_id)
    return volunteer


def history(volunteer_id: int, access: Access) -> History:
    """The volunteer's campaigns, last calls and messages, and full consent history."""
    volunteer = visible_volunteer(volunteer_id, access)
    figures = access.derived().labelled()
    result = History(volunteer)
    result.seen = db.session.execute(select(*figures).where(Volunteer.id == volunteer.id)).one()
    in_scope = access.campaign_condition(Campaign.id)  # B's rows never reach a page of A's
    result.campaigns = [
        (c, s)
        for c, s in db.session.execute(
            select(Campaign, Subscription)
            .join(Subscription, Subscription.campaign_id == Campaign.id)
            .where(Subscription.volunteer_id == volunteer.id, in_scope)
            .order_by(Campaign.slug)
        )
    ]
    result.calls = list(
        db.session.scalars(
            select(Call)
            .where(Call.caller == volunteer.phone, access.calls_condition())
            .order_by(Call.received_at.desc())
            .limit(50)
        )
    )
    result.messages = [
        (m, slug)
        for m, slug in db.session.execute(
            select(Message, Campaign.slug)
            .join(Campaign, Campaign.id == Message.campaign_id)
            .where(Message.volunteer_id == volunteer.id, in_scope)
            .order_by(Message.id.desc())
            .limit(50)
        )
    ]
    result.consent = [
        (e, slug)
        for e, slug in db.session.execute(
            select(ConsentEvent, Campaign.slug)
            .join(Campaign, Campaign.id == ConsentEvent.campaign_id)
            .where(ConsentEvent.volunteer_id == volunteer.id, in_scope)
            .order_by(ConsentEvent.id)
        )
    ]
    return result


def campaigns_for(access: Access) -> list[Campaign]:
    """The campaigns this account sees, oldest first."""
    return list(
        db.session.scalars(
            select(Campaign).where(access.campaign_condition(Campaign.id)).order_by(Campaign.id)
        )
    )


EDITABLE = ("name", "notes", "state", "district", "pincode", "language")


def edit(volunteer_id: int, access: Access, values: dict[str, str]) -> list[str]:
    """Change a volunteer's editable fields; returns the names of the fields that changed."""
    if not access.can_edit:
        raise PermissionError("edit")
    volunteer = visible_volunteer(volunteer_id, access, lock=True)
    cleaned = {key: (values.get(key) or "").strip() or None for key in EDITABLE if key in values}
    limits = {"name": 120, "notes": 2000, "state": 64, "district": 64}
    for key, limit in limits.items():
        if cleaned.get(key) and len(cleaned[key] or "") > limit:
            raise ValidationError(
                _l("%(field)s is longer than %(n)s characters", field=key, n=limit)
            )
    pincode = cleaned.get("pincode")
    if pincode:
        if not PINCODE_RE.match(pincode):
            raise ValidationError(_l("PIN code must be 6 digits, not starting with 0"))
        place = places.lookup(pincode)
        if place is None:
            raise ValidationError(
                _l("PIN code %(pincode)s is not in India Post's directory", pincode=pincode)
            )
        if pincode != volunteer.pincode:
            # A new PIN code sets state and district, unless the organiser typed new ones.
            # A district left from the old PIN code is cleared when the new one spans several.
            for key, found in (("state", place.state), ("district", place.district)):
                typed = cleaned.get(key)
                if not typed or typed == getattr(volunteer, key):
                    cleaned[key] = found
    if cleaned.get("language") and cleaned["language"] not in ("en", "hi"):
        raise ValidationError(_l("language must be en or hi"))
    changed = [key for key, value in cleaned.items() if getattr(volunteer, key) != value]
    for key in changed:
        setattr(volunteer, key, cleaned[key])
    if changed:
        audit(access, "edit", {"volunteer": volunteer.id, "fields": changed})
    db.session.flush()
    return changed


def opt_out(volunteer_id: int, access: Access) -> list[int]:
    """An admin withdraws a volunteer from every campaign in scope (on request); returns SMS ids."""
    if not access.is_admin:
        raise PermissionError("opt_out")
    volunteer = visible_volunteer(volunteer_id, access, lock=True)
    phone = volunteers.normalise(volunteer.phone)
    evidence = volunteers.Evidence(ConsentChannel.ORGANISER)
    to_send: list[int] = []
    for campaign in db.session.scalars(
        select(Campaign)
        .join(Subscription, Subscription.campaign_id == Campaign.id)
        .where(
            Subscription.volunteer_id == volunteer.id,
            Subscription.status == VolunteerStatus.ACTIVE,
            access.campaign_condition(Campaign.id),
        )
    ):
        to_send += volunteers.opt_out(volunteer, campaign, phone, evidence).message_ids
    audit(access, "opt_out", {"volunteer": volunteer.id})
    return to_send


def erase(volunteer_id: int, access: Access) -> None:
    """An admin erases a volunteer (after a confirmation step in the UI).

    Erasure removes the person from every campaign, so a campaign-scoped admin may erase only
    someone who is in no campaign beyond the scope (PermissionError otherwise).
    """
    if not access.is_admin:
        raise PermissionError("erase")
    volunteer = visible_volunteer(volunteer_id, access, lock=True)
    beyond = select(Subscription.volunteer_id).where(
        Subscription.volunteer_id == volunteer.id,
        ~access.campaign_condition(Subscription.campaign_id),
    )
    if db.session.scalar(beyond.limit(1)) is not None:
        raise PermissionError("erase")
    erasure.erase_volunteer(volunteer, access)


def audit(
    access: Access | None, action: str, detail: dict[str, Any], row_count: int | None = None
) -> AuditEntry:
    """Append an audit entry (never a phone number in the detail)."""
    entry = AuditEntry(
        user_id=access.user_id if access else None,
        action=action,
        detail=json.dumps(detail, default=str, ensure_ascii=False),
        row_count=row_count,
        created_at=clock.now(),
    )
    db.session.add(entry)
    db.session.flush()
    return entry


def audit_entries(limit: int = 200) -> list[AuditEntry]:
    """The latest audit entries, newest first."""
    return list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))


def audit_rows(limit: int = 200) -> list[tuple[AuditEntry, str | None, dict[str, Any]]]:
    """The latest audit entries with who acted (an email, not an id); accounts in the detail
    are named by email too."""
    entries = audit_entries(limit)
    details = [json.loads(e.detail or "{}") for e in entries]
    ids = {e.user_id for e in entries if e.user_id is not None}
    ids |= {d["user"] for d in details if isinstance(d.get("user"), int)}
    emails = dict(db.session.execute(select(User.id, User.email).where(User.id.in_(ids))).all())
    for detail in details:
        if isinstance(detail.get("user"), int):
            detail["user"] = emails.get(detail["user"], detail["user"])
    return [
        (entry, emails.get(entry.user_id) if entry.user_id is not None else None, detail)
        for entry, detail in zip(entries, details, strict=True)
    ]
