"""Reply keywords: a STOP-type word withdraws consent, a START-type word re-joins.

A keyword counts only when it is the whole message ("STOP" yes, "we must STOP this" no).
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from signup.campaigns.models import Campaign
from signup.extensions import db
from signup.logs import event
from signup.phones import mask, normalise
from signup.volunteers import services as volunteers
from signup.volunteers.models import ConsentChannel, Subscription, VolunteerStatus

log = logging.getLogger(__name__)

STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
START_WORDS = frozenset({"START", "UNSTOP"})


def keyword(body: str) -> str | None:
    """The keyword a message consists of, upper-cased, or None."""
    word = body.strip().strip(".!").upper()
    return word if word in STOP_WORDS | START_WORDS else None


def handle_reply(*, from_raw: str, body: str) -> str | None:
    """Apply a keyword reply to every campaign the sender belongs to (flushes only)."""
    word = keyword(body)
    phone = normalise(from_raw)
    if word is None or phone.e164 is None:
        return None
    volunteer = volunteers.find_by_phone(phone.e164, lock=True)
    if volunteer is None:
        return None
    wanted = VolunteerStatus.ACTIVE if word in STOP_WORDS else VolunteerStatus.OPTED_OUT
    campaigns = db.session.scalars(
        select(Campaign)
        .join(Subscription, Subscription.campaign_id == Campaign.id)
        .where(Subscription.volunteer_id == volunteer.id, Subscription.status == wanted)
    ).all()
    evidence = volunteers.Evidence(ConsentChannel.SMS_KEYWORD)
    for campaign in campaigns:
        if word in STOP_WORDS:
            # Twilio confirms STOP itself and refuses later sends (21610): send nothing back.
            volunteers.opt_out(volunteer, campaign, phone, evidence, confirm=False)
        else:
            volunteers.join(volunteer, campaign, phone, evidence)
    event(
        log,
        logging.INFO,
        "sms.keyword",
        keyword=word,
        to=mask(phone.e164),
        campaigns=len(campaigns),
    )
    return word
