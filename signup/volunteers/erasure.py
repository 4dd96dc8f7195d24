"""Erasure (DPDP s.8(7), s.12): remove a person's data, keep only a keyed hash of the number.

The volunteer row stays as a tombstone (`erased:<id>`) so the append-only consent ledger keeps
its references; the hash in `suppressions` stops any message to the number until they call us
again, which is a new, explicit consent.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from flask import current_app
from sqlalchemy import delete, select, update

from signup import clock
from signup import database as dbx
from signup.calls.models import Call
from signup.campaigns.models import Campaign
from signup.errors import ValidationError
from signup.extensions import db
from signup.logs import event
from signup.messaging.models import InboundMessage, Message, MessageStatus
from signup.phones import normalise
from signup.volunteers.models import (
    ConsentChannel,
    ConsentEvent,
    ConsentEventType,
    Subscription,
    Suppression,
    Volunteer,
    VolunteerStatus,
)

log = logging.getLogger(__name__)


def phone_hash(e164: str) -> str:
    """HMAC-SHA256 of the number under SUPPRESSION_KEY: useless without the key."""
    key = str(current_app.config["SUPPRESSION_KEY"]).encode()
    return hmac.new(key, e164.encode(), hashlib.sha256).hexdigest()


def is_suppressed(e164: str) -> bool:
    """True when this number was erased and has not called us since."""
    return bool(suppressed([e164]))


def suppressed(numbers: list[str], chunk: int = 5000) -> set[str]:
    """The numbers among these that were erased and have not called since (a query per chunk)."""
    found: set[str] = set()
    for start in range(0, len(numbers), chunk):
        hashes = {phone_hash(n): n for n in numbers[start : start + chunk]}
        query = select(Suppression.phone_hash).where(Suppression.phone_hash.in_(hashes))
        found.update(hashes[h] for h in db.session.scalars(query))
    return found


def lift(e164: str) -> None:
    """A new missed call is new consent: the number is no longer suppressed."""
    db.session.execute(delete(Suppression).where(Suppression.phone_hash == phone_hash(e164)))


def erase(raw_phone: str) -> Volunteer:
    """Erase a volunteer by phone (any format); raises ValidationError if there is none."""
    e164 = normalise(raw_phone).e164
    if e164 is None:
        raise ValidationError(f"{raw_phone!r} is not a valid phone number")
    volunteer = db.session.scalar(
        select(Volunteer).where(Volunteer.phone == e164).with_for_update()
    )
    if volunteer is None:
        raise ValidationError("no volunteer has that number")
    return erase_volunteer(volunteer)


def erase_volunteer(volunteer: Volunteer) -> Volunteer:
    """Erase one volunteer (locked by the caller); returns the tombstone."""
    if volunteer.status == VolunteerStatus.ERASED:
        return volunteer
    e164 = volunteer.phone
    at = clock.now()
    db.session.execute(
        dbx.insert(Suppression)
        .values(
            phone_hash=phone_hash(e164),
            opted_out=volunteer.status == VolunteerStatus.OPTED_OUT,
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=["phone_hash"])
    )
    campaigns = db.session.scalars(
        select(Campaign)
        .join(Subscription, Subscription.campaign_id == Campaign.id)
        .where(Subscription.volunteer_id == volunteer.id)
    ).all()
    for campaign in campaigns:
        db.session.add(
            ConsentEvent(
                volunteer_id=volunteer.id,
                campaign_id=campaign.id,
                event=ConsentEventType.ERASED,
                channel=ConsentChannel.ORGANISER,
                notice_version=campaign.notice_version,
                recorded_at=at,
            )
        )
    db.session.execute(
        update(Subscription)
        .where(Subscription.volunteer_id == volunteer.id)
        .values(status=VolunteerStatus.OPTED_OUT, opted_out_at=at)
    )
    db.session.execute(
        update(Message)
        .where(
            Message.volunteer_id == volunteer.id,
            Message.status.in_([MessageStatus.PENDING, MessageStatus.QUEUED]),
        )
        .values(status=MessageStatus.FAILED, error_message="erased before sending")
    )
    db.session.execute(
        update(Message).where(Message.volunteer_id == volunteer.id).values(body="", to_phone="")
    )
    db.session.execute(update(Call).where(Call.caller == e164).values(caller=None, from_raw=None))
    db.session.execute(
        update(InboundMessage).where(InboundMessage.sender == e164).values(sender=None)
    )
    volunteer.phone = f"erased:{volunteer.id}"
    volunteer.name = volunteer.state = volunteer.district = volunteer.pincode = None
    volunteer.language = None
    volunteer.status = VolunteerStatus.ERASED
    volunteer.erased_at = at
    db.session.flush()
    event(
        log, logging.INFO, "volunteer.erased", volunteer_id=volunteer.id, campaigns=len(campaigns)
    )
    return volunteer
