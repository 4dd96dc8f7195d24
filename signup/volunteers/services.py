"""Volunteer rules: one row per phone, per-campaign subscriptions, and the consent ledger."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, text

from signup import clock
from signup import database as dbx
from signup.campaigns.models import Campaign
from signup.database import NO_KEY_UPDATE
from signup.extensions import db
from signup.messaging import services as messaging
from signup.messaging.models import Message, MessageKind
from signup.phones import Phone, normalise

__all__ = ["Change", "Evidence", "join", "normalise", "opt_out", "withdraw_imported"]
from signup.volunteers import erasure
from signup.volunteers.models import (
    ConsentChannel,
    ConsentEvent,
    ConsentEventType,
    Subscription,
    Volunteer,
    VolunteerStatus,
)


@dataclass(frozen=True, slots=True)
class Evidence:
    """How a consent event reached us: the channel, and the call or message that carried it."""

    channel: ConsentChannel
    call_id: int | None = None
    message_id: int | None = None
    inbound_message_id: int | None = None


@dataclass(slots=True)
class Change:
    """What a join or opt-out did: the event it recorded and the messages to send after commit."""

    volunteer: Volunteer | None
    consent: ConsentEventType | None = None
    message_ids: list[int] = field(default_factory=list)  # to publish after commit
    created: list[int] = field(default_factory=list)  # every message created, due now or later

    def add(self, message: messaging.NewMessage | None) -> None:
        """Note a message created by this change."""
        if message is not None:
            self.created.append(message.id)
            if message.due:
                self.message_ids.append(message.id)


def one_more_call(table: Any, excluded: Any) -> dict[str, Any]:
    """The ON CONFLICT update of an existing volunteer's row for one more call."""
    return {
        "call_count": table.c.call_count + 1,
        "first_call_at": dbx.earliest(table.c.first_call_at, excluded.first_call_at),
        "last_call_at": dbx.latest(table.c.last_call_at, excluded.last_call_at),
        "updated_at": excluded.updated_at,
    }


def count_call(phone: str, at: datetime) -> Volunteer:
    """Create the volunteer for this phone or count one more call; safe under concurrency."""
    table = Volunteer.__table__
    insert = dbx.insert(Volunteer).values(
        phone=phone,
        status=VolunteerStatus.ACTIVE,
        call_count=1,
        first_call_at=at,
        last_call_at=at,
        created_at=at,
        updated_at=at,
    )
    stmt = insert.on_conflict_do_update(
        index_elements=["phone"], set_=one_more_call(table, insert.excluded)
    ).returning(Volunteer.id)
    volunteer_id = db.session.scalar(stmt)
    volunteer = db.session.get(
        Volunteer, volunteer_id, populate_existing=True, with_for_update=NO_KEY_UPDATE
    )
    assert volunteer is not None
    return volunteer


PERSON_LOCKS = 16_010  # advisory lock namespace: one person's consent changes, one at a time


def lock_people(phones: Iterable[str]) -> None:
    """Hold each number's consent lock until commit (PostgreSQL advisory locks, in one order).

    Taken before anything else by every path that joins or withdraws from a call or a reply, so
    one person's join and withdrawal apply one after the other even in concurrent transactions:
    a withdrawal committed while a batch ran is seen by its superseded check, and a join
    committed first is there for the withdrawal to withdraw.
    """
    numbers = sorted({phone for phone in phones if phone})
    if not numbers or dbx.dialect_name() != "postgresql":
        return  # SQLite (development) has one writer at a time anyway
    db.session.execute(
        text(
            "SELECT pg_advisory_xact_lock(:space, k) FROM"
            " (SELECT DISTINCT hashtext(n) AS k FROM unnest(CAST(:numbers AS text[])) AS n"
            " ORDER BY k) AS keys"
        ),
        {"space": PERSON_LOCKS, "numbers": numbers},
    )


def find_by_phone(phone: str, *, lock: bool = False) -> Volunteer | None:
    """The volunteer with this E.164 phone, optionally locked for update."""
    query = select(Volunteer).where(Volunteer.phone == phone)
    if lock:
        query = query.with_for_update(key_share=True)
    return db.session.scalar(query)


def _subscription(volunteer: Volunteer, campaign: Campaign) -> tuple[Subscription, bool]:
    """Lock the subscription, creating it if missing; True when it was created now."""
    created_id = db.session.scalar(
        dbx.insert(Subscription)
        .values(
            volunteer_id=volunteer.id,
            campaign_id=campaign.id,
            status=VolunteerStatus.ACTIVE,
            joined_at=clock.now(),
            withdrawals=0,
        )
        .on_conflict_do_nothing(index_elements=["volunteer_id", "campaign_id"])
        .returning(Subscription.id)
    )
    sub = _locked_subscription(volunteer, campaign)
    assert sub is not None
    return sub, created_id is not None


def _locked_subscription(volunteer: Volunteer, campaign: Campaign) -> Subscription | None:
    return db.session.scalar(
        select(Subscription)
        .where(Subscription.volunteer_id == volunteer.id, Subscription.campaign_id == campaign.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )


def _record_consent(
    volunteer: Volunteer, campaign: Campaign | None, kind: ConsentEventType, evidence: Evidence
) -> None:
    """Append one ledger row; a withdrawal outside every campaign has no campaign."""
    db.session.add(
        ConsentEvent(
            volunteer_id=volunteer.id,
            campaign_id=campaign.id if campaign is not None else None,
            event=kind,
            channel=evidence.channel,
            call_id=evidence.call_id,
            message_id=evidence.message_id,
            inbound_message_id=evidence.inbound_message_id,
            notice_version=campaign.notice_version if campaign is not None else None,
            recorded_at=clock.now(),
        )
    )


def _refresh_status(volunteer: Volunteer) -> None:
    """A volunteer is active while any subscription is; opted out when none is."""
    active = db.session.scalar(
        select(
            exists().where(
                Subscription.volunteer_id == volunteer.id,
                Subscription.status == VolunteerStatus.ACTIVE,
            )
        )
    )
    if active:
        volunteer.status = VolunteerStatus.ACTIVE
        volunteer.opted_out_at = None
    elif volunteer.status != VolunteerStatus.OPTED_OUT:
        volunteer.status = VolunteerStatus.OPTED_OUT
        volunteer.opted_out_at = clock.now()


def join(volunteer: Volunteer, campaign: Campaign, phone: Phone, evidence: Evidence) -> Change:
    """Subscribe a volunteer (new, or re-joining after an opt-out) and queue onboarding once."""
    if evidence.channel is ConsentChannel.MISSED_CALL:
        erasure.lift(volunteer.phone)  # calling again is new consent, even after erasure
    elif erasure.is_suppressed(volunteer.phone):
        return Change(volunteer)  # an erased number is not re-added by anything but a call
    sub, created = _subscription(volunteer, campaign)
    change = Change(volunteer)
    if created or sub.status != VolunteerStatus.ACTIVE:
        change.consent = ConsentEventType.GIVEN if created else ConsentEventType.REGIVEN
        sub.status = VolunteerStatus.ACTIVE
        sub.opted_out_at = None
        volunteer.consent_at = clock.now()
        _record_consent(volunteer, campaign, change.consent, evidence)
    _refresh_status(volunteer)
    if phone.is_indian_mobile:
        change.add(messaging.create_message(volunteer, campaign, MessageKind.ONBOARDING))
    db.session.flush()
    return change


def opt_out(
    volunteer: Volunteer,
    campaign: Campaign,
    phone: Phone,
    evidence: Evidence,
    *,
    confirm: bool = True,
) -> Change:
    """Withdraw a volunteer from a campaign; queue one confirmation per withdrawal if asked."""
    sub = _locked_subscription(volunteer, campaign)
    change = Change(volunteer)
    if sub is None or sub.status != VolunteerStatus.ACTIVE:
        if withdraw_imported(volunteer, evidence, campaign):
            change.consent = ConsentEventType.WITHDRAWN
        return change
    sub.status = VolunteerStatus.OPTED_OUT
    sub.opted_out_at = clock.now()
    sub.withdrawals += 1
    change.consent = ConsentEventType.WITHDRAWN
    _record_consent(volunteer, campaign, ConsentEventType.WITHDRAWN, evidence)
    _refresh_status(volunteer)
    if confirm and phone.is_indian_mobile:
        change.add(
            messaging.create_message(
                volunteer, campaign, MessageKind.OPTOUT_CONFIRMATION, round_=sub.withdrawals
            )
        )
    db.session.flush()
    return change


def withdraw_imported(
    volunteer: Volunteer, evidence: Evidence, campaign: Campaign | None = None
) -> bool:
    """An imported person (on an organiser's list, never joined) who asks to leave is opted out.

    They have no subscription to withdraw, so their status carries the refusal, and the ledger
    its evidence (with the campaign they reached, if any); True if it did.
    """
    if volunteer.status != VolunteerStatus.IMPORTED:
        return False
    volunteer.status = VolunteerStatus.OPTED_OUT
    volunteer.opted_out_at = clock.now()
    _record_consent(volunteer, campaign, ConsentEventType.WITHDRAWN, evidence)
    db.session.flush()
    return True


def withdraw_unsubscribed(message: Message) -> None:
    """The provider says the recipient unsubscribed (Twilio 21610): record their withdrawal."""
    lock_people([message.to_phone])
    volunteer = db.session.get(Volunteer, message.volunteer_id, with_for_update=NO_KEY_UPDATE)
    campaign = db.session.get(Campaign, message.campaign_id)
    if volunteer is None or campaign is None:
        return
    evidence = Evidence(ConsentChannel.PROVIDER, message_id=message.id)
    opt_out(volunteer, campaign, normalise(volunteer.phone), evidence, confirm=False)
