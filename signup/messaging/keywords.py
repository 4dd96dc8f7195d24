"""Reply keywords: STOP-type words withdraw consent, START-type words re-join, HELP answers.

A keyword counts only when it is the whole message ("STOP" yes, "we must STOP this" no).
Hindi and Hinglish words are accepted beside the English ones (README, "Reply keywords").
"""

from __future__ import annotations

import enum
import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from signup import clock
from signup import database as dbx
from signup.campaigns.models import Campaign
from signup.extensions import db
from signup.logs import event
from signup.messaging import services as messaging
from signup.messaging.models import InboundMessage, Message, MessageKind
from signup.phones import mask, normalise
from signup.volunteers import erasure
from signup.volunteers import services as volunteers
from signup.volunteers.models import ConsentChannel, Subscription, Volunteer, VolunteerStatus

log = logging.getLogger(__name__)


class Keyword(enum.StrEnum):
    """What a reply asks for."""

    STOP = "stop"
    START = "start"
    HELP = "help"


WORDS: dict[Keyword, frozenset[str]] = {
    Keyword.STOP: frozenset(
        {
            "STOP",
            "STOPALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
            "बंद",
            "बंद करें",
            "बंद करो",
            "रोकें",
            "रोको",
            "हटाएं",
            "हटाओ",
            "बन्द",
            "बन्द करो",
            "बन्द करें",
            "बंद कीजिए",
            "बंद करिए",
            "बंद कर दो",
            "रोक दो",
            "रोक दें",
            "हटा दो",
            "हटा दें",
            "मत भेजो",
            "मत भेजें",
            "नहीं चाहिए",
            "BAND",
            "BAND KARO",
            "BAND KRO",
            "BAND KAREN",
            "BAND KAREIN",
            "BAND KARE",
            "BAND KARIYE",
            "BAND KAR DO",
            "BANDH",
            "BANDH KARO",
            "BANDH KRO",
            "BANDH KAREN",
            "BANDH KAREIN",
            "BANDH KARE",
            "BANDH KARIYE",
            "BANDH KAR DO",
            "SMS BAND",
            "SMS BAND KARO",
            "ROKO",
            "ROK DO",
            "ROKEN",
            "RUKO",
            "HATAO",
            "HATA DO",
            "HATAYEN",
            "MAT BHEJO",
            "MAT BHEJEN",
            "NAHI CHAHIYE",
            "NAHIN CHAHIYE",
        }
    ),
    Keyword.START: frozenset(
        {
            "START",
            "UNSTOP",
            "शुरू",
            "शुरू करें",
            "जोड़ें",
            "शुरू करो",
            "जोड़ो",
            "जोड़ दो",
            "SHURU",
            "SHURU KARO",
            "SHURU KAREN",
            "JODO",
            "JOD DO",
        }
    ),
    Keyword.HELP: frozenset(
        {
            "HELP",
            "INFO",
            "मदद",
            "सहायता",
            "जानकारी",
            "MADAD",
            "SAHAYATA",
            "JANKARI",
        }
    ),
}
HELP_INTERVAL = timedelta(hours=24)  # at most one help answer a day per campaign


def _plain(body: str) -> str:
    """The text as a person reads it: compatibility forms folded (NFKC), format characters gone.

    Full-width letters (U+FF33…) read as STOP and a zero-width space or joiner is invisible, so
    neither may hide a keyword from the match.
    """
    text = unicodedata.normalize("NFKC", body)
    return "".join(char for char in text if unicodedata.category(char) != "Cf")


def keyword(body: str) -> Keyword | None:
    """The keyword a message consists of, or None."""
    text = re.sub(r"\s+", " ", _plain(body)).strip().strip(".!?।").strip().upper()
    for kind, words in WORDS.items():
        if text in words:
            return kind
    return None


@dataclass(frozen=True, slots=True)
class Reply:
    """An inbound SMS as a provider reported it."""

    provider: str
    provider_message_id: str
    from_raw: str
    body: str
    # Twilio's OptOutType (STOP, START or HELP): its Advanced Opt-Out matched a keyword of its
    # own (ARRET, free text…) and already answered the sender; the field decides, not the body.
    provider_keyword: str | None = None

    @property
    def handled_by_provider(self) -> bool:
        """True when the provider already answered the sender: we send nothing back."""
        return bool(self.provider_keyword)

    def provider_meaning(self) -> Keyword | None:
        """The provider's verdict, if it gave one we know (a value Twilio adds later is not)."""
        try:
            return Keyword((self.provider_keyword or "").strip().lower())
        except ValueError:
            return None

    def meaning(self) -> Keyword | None:
        """What the reply asks for: the provider's verdict when it gave one, else our keyword."""
        return self.provider_meaning() or keyword(self.body)

    def channel(self) -> ConsentChannel:
        """The ledger's channel: `provider` when the provider's opt-out decided."""
        if self.provider_meaning() is not None:
            return ConsentChannel.PROVIDER
        return ConsentChannel.SMS_KEYWORD


def _record(reply: Reply, sender: str | None, word: Keyword | None) -> int | None:
    """Store the reply once per provider id; None when it was seen before (a retry)."""
    return db.session.scalar(
        dbx.insert(InboundMessage)
        .values(
            provider=reply.provider,
            provider_message_id=reply.provider_message_id[:64],
            sender=sender,
            keyword=word,
            received_at=clock.now(),
        )
        .on_conflict_do_nothing(index_elements=["provider", "provider_message_id"])
        .returning(InboundMessage.id)
    )


def handle_reply(reply: Reply) -> list[int]:
    """Apply a keyword reply to the sender's campaigns; returns message ids to publish."""
    word = reply.meaning()
    phone = normalise(reply.from_raw)
    if word is None or phone.e164 is None:
        return []
    volunteers.lock_people([phone.e164])
    volunteer = volunteers.find_by_phone(phone.e164, lock=True)
    # The sender's number is the evidence of the keyword: a STOP from someone whose missed call
    # is not processed yet must still supersede that join (calls.services.superseded_joins).
    # An erased person's number is not stored again: the provider's id alone keeps a retry
    # from counting twice.
    erased = volunteer is None and erasure.is_suppressed(phone.e164)
    inbound_id = _record(reply, None if erased else phone.e164, word)
    if erased and inbound_id is not None and word is Keyword.STOP:
        erasure.withdraw_suppressed(phone.e164)
    if inbound_id is None or volunteer is None:
        return []
    wanted = VolunteerStatus.OPTED_OUT if word is Keyword.START else VolunteerStatus.ACTIVE
    campaigns = db.session.scalars(
        select(Campaign)
        .join(Subscription, Subscription.campaign_id == Campaign.id)
        .where(Subscription.volunteer_id == volunteer.id, Subscription.status == wanted)
    ).all()
    evidence = volunteers.Evidence(reply.channel(), inbound_message_id=inbound_id)
    to_send: list[int] = []
    if word is Keyword.STOP:
        volunteers.withdraw_imported(volunteer, evidence)  # on a list, never joined: refused too
    for campaign in campaigns:
        if word is Keyword.STOP:
            # Nothing goes back: sending to a number that just said STOP gives Twilio 21610.
            volunteers.opt_out(volunteer, campaign, phone, evidence, confirm=False)
        elif word is Keyword.START:
            to_send += volunteers.join(volunteer, campaign, phone, evidence).message_ids
        elif not reply.handled_by_provider:
            to_send += _help(volunteer, campaign)
    event(
        log,
        logging.INFO,
        "sms.keyword",
        keyword=word,
        provider=reply.provider,
        sender=mask(phone.e164),
        campaigns=len(campaigns),
    )
    return to_send


def _help(volunteer: Volunteer, campaign: Campaign) -> list[int]:
    """Queue the campaign's help text, at most once a day."""
    since = clock.now() - HELP_INTERVAL
    previous = db.session.execute(
        select(func.count(), func.max(Message.created_at)).where(
            Message.volunteer_id == volunteer.id,
            Message.campaign_id == campaign.id,
            Message.kind == MessageKind.HELP,
        )
    ).one()
    if previous[1] is not None and previous[1] > since:
        return []
    created = messaging.create_message(
        volunteer, campaign, MessageKind.HELP, round_=int(previous[0])
    )
    return [created.id] if created is not None and created.due else []
