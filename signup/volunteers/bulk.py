"""Joining many callers at once: services.count_call + services.join, one statement per step.

Each step is one multi-row statement over the whole batch, so a batch of a few hundred calls
costs about as many round trips as one call did. The rules are those of services.join for a
missed call; tests/integration/test_batch_processing.py checks that both give the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from signup import clock
from signup import database as dbx
from signup.campaigns.models import Campaign
from signup.extensions import db
from signup.messaging import services as messaging
from signup.messaging.models import MessageKind
from signup.phones import Phone
from signup.volunteers import erasure, services
from signup.volunteers.models import (
    ConsentChannel,
    ConsentEvent,
    ConsentEventType,
    Subscription,
    Suppression,
    Volunteer,
    VolunteerStatus,
)


@dataclass(frozen=True, slots=True)
class Joiner:
    """One missed call to a campaign's number from a person's phone."""

    call_id: int
    phone: Phone
    received_at: datetime
    campaign: Campaign

    @property
    def e164(self) -> str:
        """The caller's E.164 number (a joiner always has one)."""
        assert self.phone.e164 is not None
        return self.phone.e164


@dataclass(frozen=True, slots=True)
class Joined:
    """What joining did for one call: the consent recorded and the message created, if any."""

    consent: ConsentEventType | None
    message: messaging.NewMessage | None


def join_callers(joiners: list[Joiner]) -> dict[int, Joined]:
    """Count each call and subscribe its caller; keyed by call id. Callers must be distinct.

    Rows are written in phone order, so concurrent batches lock volunteers in the same order.
    """
    if not joiners:
        return {}
    phones = [j.e164 for j in joiners]
    if len(set(phones)) != len(phones):
        raise ValueError("join_callers needs distinct callers; repeat callers go one by one")
    ordered = sorted(joiners, key=lambda j: j.e164)
    volunteer_ids = _count_calls(ordered)
    # Calling again is new consent, even after an erasure.
    db.session.execute(
        delete(Suppression)
        .where(Suppression.phone_hash.in_(sorted(erasure.phone_hash(p) for p in phones)))
        .execution_options(synchronize_session=False)
    )
    consents = _subscribe(ordered, volunteer_ids)
    messages = _onboarding(ordered, volunteer_ids)
    return {
        j.call_id: Joined(consents.get(j.call_id), messages.get(volunteer_ids[j.e164]))
        for j in joiners
    }


def _count_calls(ordered: list[Joiner]) -> dict[str, int]:
    """Insert or update one volunteer per caller, active after joining; phone -> volunteer id."""
    now = clock.now()
    table = Volunteer.__table__
    rows = [
        {
            "phone": j.e164,
            "status": VolunteerStatus.ACTIVE,
            "call_count": 1,
            "first_call_at": j.received_at,
            "last_call_at": j.received_at,
            "opted_out_at": None,
            "created_at": now,
            "updated_at": now,
        }
        for j in ordered
    ]
    insert, params = dbx.insert_many(table, rows)
    excluded = insert.excluded
    stmt = insert.on_conflict_do_update(
        index_elements=["phone"],
        set_={
            **services.one_more_call(table, excluded),
            # A join leaves the volunteer active (services.join's _refresh_status).
            "status": excluded.status,
            "opted_out_at": excluded.opted_out_at,
        },
    ).returning(table.c.phone, table.c.id)
    return {phone: volunteer_id for phone, volunteer_id in db.session.execute(stmt, params)}


def _subscribe(ordered: list[Joiner], volunteer_ids: dict[str, int]) -> dict[int, ConsentEventType]:
    """Create or reactivate each subscription; record consent where it changed; call id -> event."""
    now = clock.now()
    rows = [
        {
            "volunteer_id": volunteer_ids[j.e164],
            "campaign_id": j.campaign.id,
            "status": VolunteerStatus.ACTIVE,
            "joined_at": now,
            "withdrawals": 0,
        }
        for j in ordered
    ]
    table = Subscription.__table__
    insert, params = dbx.insert_many(table, rows)
    inserted = db.session.execute(
        insert.on_conflict_do_nothing(index_elements=["volunteer_id", "campaign_id"]).returning(
            table.c.volunteer_id, table.c.campaign_id
        ),
        params,
    )
    created = {(volunteer_id, campaign_id) for volunteer_id, campaign_id in inserted}
    inactive = _locked_inactive(
        [j for j in ordered if (volunteer_ids[j.e164], j.campaign.id) not in created],
        volunteer_ids,
    )
    if inactive:
        db.session.execute(
            update(Subscription)
            .where(dbx.id_in(Subscription.id, sorted(inactive.values())))
            .values(status=VolunteerStatus.ACTIVE, opted_out_at=None)
            .execution_options(synchronize_session=False)
        )
    consents: dict[int, ConsentEventType] = {}
    for j in ordered:
        key = (volunteer_ids[j.e164], j.campaign.id)
        if key in created:
            consents[j.call_id] = ConsentEventType.GIVEN
        elif key in inactive:
            consents[j.call_id] = ConsentEventType.REGIVEN
    _record_consents([j for j in ordered if j.call_id in consents], volunteer_ids, consents, now)
    return consents


def _locked_inactive(
    joiners: list[Joiner], volunteer_ids: dict[str, int]
) -> dict[tuple[int, int], int]:
    """Lock the existing subscriptions of these joiners; (volunteer, campaign) -> id of inactive."""
    by_campaign: dict[int, list[int]] = defaultdict(list)
    for j in joiners:
        by_campaign[j.campaign.id].append(volunteer_ids[j.e164])
    inactive: dict[tuple[int, int], int] = {}
    for campaign_id, ids in sorted(by_campaign.items()):
        rows = db.session.execute(
            select(Subscription.id, Subscription.volunteer_id, Subscription.status)
            .where(
                Subscription.campaign_id == campaign_id, dbx.id_in(Subscription.volunteer_id, ids)
            )
            .order_by(Subscription.volunteer_id)
            .with_for_update(key_share=True)
        )
        for sub_id, volunteer_id, status in rows:
            if status != VolunteerStatus.ACTIVE:
                inactive[(volunteer_id, campaign_id)] = sub_id
    return inactive


def _record_consents(
    joiners: list[Joiner],
    volunteer_ids: dict[str, int],
    consents: dict[int, ConsentEventType],
    now: datetime,
) -> None:
    """Append the consent events and stamp consent_at on the volunteers they belong to."""
    if not joiners:
        return
    db.session.execute(
        *dbx.insert_many(
            ConsentEvent.__table__,
            [
                {
                    "volunteer_id": volunteer_ids[j.e164],
                    "campaign_id": j.campaign.id,
                    "event": consents[j.call_id],
                    "channel": ConsentChannel.MISSED_CALL,
                    "call_id": j.call_id,
                    "message_id": None,
                    "inbound_message_id": None,
                    "notice_version": j.campaign.notice_version,
                    "recorded_at": now,
                }
                for j in joiners
            ],
        )
    )
    db.session.execute(
        update(Volunteer)
        .where(dbx.id_in(Volunteer.id, sorted(volunteer_ids[j.e164] for j in joiners)))
        .values(consent_at=now)
        .execution_options(synchronize_session=False)
    )


def _onboarding(
    ordered: list[Joiner], volunteer_ids: dict[str, int]
) -> dict[int, messaging.NewMessage]:
    """One onboarding message per Indian mobile and campaign, once ever; volunteer id -> message."""
    by_campaign: dict[int, list[Joiner]] = defaultdict(list)
    for j in ordered:
        if j.phone.is_indian_mobile:
            by_campaign[j.campaign.id].append(j)
    created: dict[int, messaging.NewMessage] = {}
    for group in by_campaign.values():
        recipients = [(volunteer_ids[j.e164], j.e164) for j in group]
        created.update(
            messaging.create_messages(group[0].campaign, MessageKind.ONBOARDING, recipients)
        )
    return created
