"""Erasure (DPDP s.8(7), s.12): remove a person's data, keep only a keyed hash of the number.

The volunteer row stays as a tombstone (`erased:<id>`) so the append-only consent ledger keeps
its references; the hash in `suppressions` stops any message to the number, and any import of
it, until they call us again, which is a new, explicit consent.

TREATMENTS says, for every column that can hold text, how erasure treats it; a test fails when
a table or column is added without an entry here, so erasure stays total by construction.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers
from flask import current_app
from sqlalchemy import Column, delete, or_, select, update

from signup import clock
from signup import database as dbx
from signup.admin.access import Access
from signup.admin.models import AuditEntry, ImportBatch, ImportStatus
from signup.calls.models import Call
from signup.campaigns.models import Campaign
from signup.errors import ValidationError
from signup.extensions import db
from signup.logs import event
from signup.messaging.models import InboundMessage, Message, MessageStatus
from signup.phones import SEPARATOR, digit_pattern, normalise
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
REDACTED = "[erased]"
MIN_NAME_PART = 3  # shorter words (initials, "Md", "Km") name no one and are everywhere
NAME_SEPARATORS = r"[\s.,_/()+-]+"
_LETTER = r"[^\W\d_]"  # a letter in any script: a name part stands between non-letters


class Kind(enum.StrEnum):
    """How erasure treats a column."""

    BLANKED = "blanked"  # set to NULL or '' on the erased person's rows
    REMOVED = "removed"  # the person's entries are taken out (rows, or rows inside JSON)
    SCRUBBED = "scrubbed"  # free text: every form of the number, and the name, replaced
    TOMBSTONE = "tombstone"  # replaced by a value that names no one
    KEYED_HASH = "keyed hash"  # an HMAC under SUPPRESSION_KEY, useless without the key
    DERIVED = "derived"  # computed by the database from other columns, which are erased
    NOT_PERSONAL = "not personal"


@dataclass(frozen=True, slots=True)
class Treatment:
    """A column's treatment at erasure, and why."""

    kind: Kind
    why: str


def _not_personal(why: str) -> Treatment:
    return Treatment(Kind.NOT_PERSONAL, why)


_ENUM = _not_personal("one of a fixed set of codes")
_PROVIDER_ID = _not_personal("the provider's id of an event, no number in it")
_CAMPAIGN = _not_personal("a campaign's own setting or published text")
_ORGANISER = _not_personal("an organiser's account, managed by admins, not a volunteer's data")

# Every column of text, JSON or bytes in the schema (model or migration), by (table, column).
TREATMENTS: dict[tuple[str, str], Treatment] = {
    ("volunteers", "phone"): Treatment(Kind.TOMBSTONE, "erased:<id>; a hash in suppressions"),
    ("volunteers", "name"): Treatment(Kind.BLANKED, "the person's name"),
    ("volunteers", "state"): Treatment(Kind.BLANKED, "where the person lives"),
    ("volunteers", "district"): Treatment(Kind.BLANKED, "where the person lives"),
    ("volunteers", "pincode"): Treatment(Kind.BLANKED, "where the person lives"),
    ("volunteers", "language"): Treatment(Kind.BLANKED, "the person's language"),
    ("volunteers", "notes"): Treatment(Kind.BLANKED, "organisers' free text about the person"),
    ("volunteers", "status"): _ENUM,
    ("volunteers", "csv_head"): Treatment(Kind.DERIVED, "generated from phone, name and status"),
    ("volunteers", "csv_tail"): Treatment(Kind.DERIVED, "generated from the blanked columns"),
    ("calls", "from_raw"): Treatment(Kind.BLANKED, "the caller's number as the provider sent it"),
    ("calls", "caller"): Treatment(Kind.BLANKED, "the caller's number"),
    ("calls", "to_raw"): Treatment(Kind.BLANKED, "on calls to the person's number"),
    ("calls", "called"): Treatment(Kind.BLANKED, "on calls to the person's number"),
    ("calls", "caller_kind"): _ENUM,
    ("calls", "outcome"): _ENUM,
    ("calls", "state"): _ENUM,
    ("calls", "provider"): _ENUM,
    ("calls", "provider_call_id"): _PROVIDER_ID,
    ("messages", "to_phone"): Treatment(Kind.BLANKED, "the person's number"),
    ("messages", "body"): Treatment(Kind.BLANKED, "the text sent to the person"),
    ("messages", "error_message"): Treatment(Kind.BLANKED, "a provider's error may quote the To"),
    ("messages", "kind"): _ENUM,
    ("messages", "status"): _ENUM,
    ("messages", "provider"): _ENUM,
    ("messages", "provider_message_id"): _PROVIDER_ID,
    ("inbound_messages", "sender"): Treatment(Kind.BLANKED, "the person's number"),
    ("inbound_messages", "keyword"): _not_personal("a fixed keyword, never the free text"),
    ("inbound_messages", "provider"): _ENUM,
    ("inbound_messages", "provider_message_id"): _PROVIDER_ID,
    ("imports", "rows"): Treatment(
        Kind.REMOVED, "the person's rows leave unconfirmed previews; previews expire"
    ),
    ("imports", "filename"): Treatment(Kind.SCRUBBED, "an organiser may name a file after anyone"),
    ("imports", "upload"): Treatment(
        Kind.REMOVED, "an upload not yet read is discarded (uploaded again, it is re-checked)"
    ),
    ("imports", "error"): Treatment(Kind.SCRUBBED, "a one-line reason, which could quote a cell"),
    ("imports", "status"): _ENUM,
    ("audit_log", "detail"): Treatment(Kind.SCRUBBED, "free text an organiser's action produced"),
    ("audit_log", "action"): _ENUM,
    ("suppressions", "phone_hash"): Treatment(Kind.KEYED_HASH, "stops messages and imports"),
    ("consent_events", "event"): _ENUM,
    ("consent_events", "channel"): _ENUM,
    ("subscriptions", "status"): _ENUM,
    ("campaigns", "slug"): _CAMPAIGN,
    ("campaigns", "name"): _CAMPAIGN,
    ("campaigns", "number"): _CAMPAIGN,
    ("campaigns", "optout_number"): _CAMPAIGN,
    ("campaigns", "language"): _CAMPAIGN,
    ("campaigns", "sms_text"): _CAMPAIGN,
    ("campaigns", "optout_text"): _CAMPAIGN,
    ("campaigns", "help_text"): _CAMPAIGN,
    ("campaigns", "dlt_entity_id"): _CAMPAIGN,
    ("campaigns", "dlt_header"): _CAMPAIGN,
    ("campaigns", "quiet_hours"): _CAMPAIGN,
    ("campaign_notices", "text"): _CAMPAIGN,
    ("dlt_templates", "kind"): _CAMPAIGN,
    ("dlt_templates", "template_id"): _CAMPAIGN,
    ("dlt_templates", "text"): _CAMPAIGN,
    ("blackouts", "reason"): _not_personal("why a campaign is silent for a period (a poll)"),
    ("users", "email"): _ORGANISER,
    ("users", "password_hash"): _ORGANISER,
    ("users", "role"): _ORGANISER,
    ("users", "language"): _ORGANISER,
    ("user_states", "state"): _ORGANISER,
    ("alembic_version", "version_num"): _not_personal("the schema's revision"),
}
# The raw provider strings on calls: blanked wherever they hold the number, parsed or not.
RAW_CALL_COLUMNS = ("from_raw", "to_raw")
# Outside the database: the call spool (signup.calls.spool), in Redis and in files, is purged
# of the person's calls by Spool.forget(); logs never hold a full number (signup.phones.mask).


def phone_hash(e164: str) -> str:
    """HMAC-SHA256 of the number under SUPPRESSION_KEY: useless without the key."""
    key = str(current_app.config["SUPPRESSION_KEY"]).encode()
    return hmac.new(key, e164.encode(), hashlib.sha256).hexdigest()


def suppressed(phones: Iterable[str], chunk: int = 5000) -> set[str]:
    """The numbers among these (E.164) that were erased and have not called us since.

    One query per `chunk` numbers: an import checks tens of thousands at once.
    """
    numbers = sorted(set(phones))
    found: set[str] = set()
    for start in range(0, len(numbers), chunk):
        by_hash = {phone_hash(n): n for n in numbers[start : start + chunk]}
        query = select(Suppression.phone_hash).where(Suppression.phone_hash.in_(sorted(by_hash)))
        found.update(by_hash[h] for h in db.session.scalars(query))
    return found


def is_suppressed(e164: str) -> bool:
    """True when this number was erased and has not called us since."""
    return bool(suppressed([e164]))


def withdraw_suppressed(e164: str) -> None:
    """A STOP from an erased number is a withdrawal made now, kept without the number.

    Its suppression is dated now (and marked opted out), so a join the person made before it
    that is still waiting (calls.services.superseded_joins) is superseded, as by any withdrawal.
    """
    db.session.execute(
        update(Suppression)
        .where(Suppression.phone_hash == phone_hash(e164))
        .values(created_at=clock.now(), opted_out=True)
    )


def lift(e164: str) -> None:
    """A new missed call is new consent: the number is no longer suppressed."""
    db.session.execute(delete(Suppression).where(Suppression.phone_hash == phone_hash(e164)))


@dataclass(frozen=True, slots=True)
class Traces:
    """What identifies a person in free text: every written form of the number, and the name."""

    e164: str
    name: str | None

    def pattern(self) -> str:
        """A regular expression, the same in Python and PostgreSQL, for any form of the number.

        The national digits, each in any script and raw or percent-encoded, with up to two
        separators of any kind between any two of them (signup.phones.SEPARATOR) match `+91
        99112 78181`, `099112_78181`, `9911%2D278181`, Devanagari digits and the rest (a prefix
        left before the match names no one).
        """
        national = str(phonenumbers.parse(self.e164).national_number)
        return (SEPARATOR + "{0,2}").join(digit_pattern(int(d)) for d in national)

    def name_parts(self) -> list[str]:
        """The words of the name that identify (3 letters or more), longest first."""
        words = re.split(NAME_SEPARATORS, self.name or "")
        return sorted({w for w in words if len(w) >= MIN_NAME_PART}, key=len, reverse=True)

    def scrub(self, text: str, *, name_parts: bool = True) -> str:
        """The text with every form of the number, and the name, replaced by [erased].

        With name_parts, each word of the name goes wherever it stands, in any case, order or
        separation (free text an organiser wrote: a common word may go too); without, only the
        whole name (structured data, where other people's names must stay whole).
        """
        text = re.sub(self.pattern(), REDACTED, text)
        if not self.name:
            return text
        words = self.name_parts() if name_parts else [self.name]
        if words:
            alternatives = "|".join(map(re.escape, words))
            text = re.sub(
                rf"(?<!{_LETTER})(?:{alternatives})(?!{_LETTER})",
                REDACTED,
                text,
                flags=re.IGNORECASE,
            )
        return text

    def found_in(self, column: Any) -> Any:
        """A SQL condition preselecting the rows whose column may need scrubbing."""
        condition = column.regexp_match(self.pattern())
        for word in self.name_parts() or ([self.name] if self.name else []):
            condition = or_(condition, column.icontains(word, autoescape=True))
        return condition


def erase(raw_phone: str, actor: Access | str) -> Volunteer:
    """Erase a volunteer by phone (any format); raises ValidationError if there is none."""
    e164 = normalise(raw_phone).e164
    if e164 is None:
        raise ValidationError(f"{raw_phone!r} is not a valid phone number")
    # The person's consent lock first, as every join and withdrawal takes it (services imports
    # this module, hence the late import): an erasure never interleaves with their call.
    from signup.volunteers.services import lock_people

    lock_people([e164])
    volunteer = db.session.scalar(
        select(Volunteer).where(Volunteer.phone == e164).with_for_update()
    )
    if volunteer is None:
        raise ValidationError("no volunteer has that number")
    return erase_volunteer(volunteer, actor)


def erase_volunteer(volunteer: Volunteer, actor: Access | str) -> Volunteer:
    """Erase one volunteer (locked by the caller) everywhere TREATMENTS lists; the tombstone.

    Every erasure is audited, whoever asked: an account (`Access`) or a named operator outside
    the admin (the CLI: `cli:<OS user>`).
    """
    if volunteer.status == VolunteerStatus.ERASED:
        return volunteer
    traces = Traces(volunteer.phone, volunteer.name)
    at = clock.now()
    db.session.execute(
        dbx.insert(Suppression)
        .values(
            phone_hash=phone_hash(traces.e164),
            opted_out=volunteer.status == VolunteerStatus.OPTED_OUT,
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=["phone_hash"])
    )
    campaigns = _withdraw(volunteer, at)
    _erase_messages(volunteer.id)
    _erase_calls(traces)
    db.session.execute(
        update(InboundMessage).where(InboundMessage.sender == traces.e164).values(sender=None)
    )
    _erase_import_previews(traces)
    _scrub(AuditEntry.__table__.c.detail, traces)
    _scrub(ImportBatch.__table__.c.filename, traces)
    _scrub(ImportBatch.__table__.c.error, traces)
    volunteer.phone = f"erased:{volunteer.id}"
    for column in _blanked("volunteers"):
        setattr(volunteer, column, None)
    volunteer.status = VolunteerStatus.ERASED
    volunteer.erased_at = at
    db.session.flush()
    _audit(volunteer, actor)
    spooled = current_app.extensions["call_spool"].forget(traces.e164)
    event(
        log,
        logging.INFO,
        "volunteer.erased",
        volunteer_id=volunteer.id,
        campaigns=campaigns,
        spooled_calls=spooled,
    )
    return volunteer


def _audit(volunteer: Volunteer, actor: Access | str) -> None:
    """The audit entry of an erasure: the tombstone's id and who asked, never the number."""
    from signup.admin.services import audit  # admin services build on this module

    if isinstance(actor, str):
        audit(None, "erase", {"volunteer": volunteer.id, "by": actor})
    else:
        audit(actor, "erase", {"volunteer": volunteer.id})


def _blanked(table: str) -> list[str]:
    """The columns of a table that erasure blanks, as TREATMENTS lists them."""
    return [c for (t, c), how in TREATMENTS.items() if t == table and how.kind is Kind.BLANKED]


def _withdraw(volunteer: Volunteer, at: Any) -> int:
    """Record the erasure in the ledger and end every subscription; the number of campaigns."""
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
    return len(campaigns)


def _erase_messages(volunteer_id: int) -> None:
    """Unsent messages fail; every message loses its number, text and provider error."""
    db.session.execute(
        update(Message)
        .where(Message.volunteer_id == volunteer_id)
        .values(body="", to_phone="", error_message=None)
    )
    db.session.execute(
        update(Message)
        .where(
            Message.volunteer_id == volunteer_id,
            Message.status.in_([MessageStatus.PENDING, MessageStatus.QUEUED]),
        )
        .values(status=MessageStatus.FAILED, error_message="erased before sending")
    )


def _erase_calls(traces: Traces) -> None:
    """Calls from the number lose caller and raw From; calls to it lose called and raw To.

    A raw string that holds the number in any form is blanked too, parsed or not
    (`sip:+91...@pbx`, `91...#`): the raw columns are the ones TREATMENTS blanks on calls.
    """
    e164, pattern = traces.e164, traces.pattern()
    db.session.execute(update(Call).where(Call.caller == e164).values(caller=None, from_raw=None))
    db.session.execute(update(Call).where(Call.called == e164).values(called=None, to_raw=None))
    for raw in RAW_CALL_COLUMNS:
        column = Call.__table__.c[raw]
        db.session.execute(update(Call).where(column.regexp_match(pattern)).values({column: None}))


def _erase_import_previews(traces: Traces) -> None:
    """Take the person's rows out of every list awaiting confirmation; drop unread uploads.

    An uploaded file not yet read (a CSV or a zipped workbook) cannot be searched reliably,
    so it is discarded with a one-line reason: uploaded again, its rows are checked against
    the suppression list like any other.
    """
    db.session.execute(
        update(ImportBatch)
        .where(ImportBatch.status.in_([ImportStatus.WAITING, ImportStatus.READING]))
        .values(
            upload=None,
            status=ImportStatus.FAILED,
            error="discarded: a person was erased while this list waited; upload it again",
        )
    )
    for batch in db.session.scalars(
        select(ImportBatch).where(ImportBatch.merged_at.is_(None)).with_for_update()
    ):
        rows = json.loads(batch.rows)
        kept = [row for row in rows if row.get("phone") != traces.e164]
        # Structured rows: other people's names stay whole (no name parts scrubbed).
        text = traces.scrub(json.dumps(kept, ensure_ascii=False), name_parts=False)
        if len(kept) != len(rows) or text != batch.rows:
            batch.rows = text


def _scrub(column: Column[Any], traces: Traces) -> None:
    """Scrub the person from a free-text column wherever they appear in it."""
    table = column.table
    key = next(iter(table.primary_key.columns))
    for row_id, value in db.session.execute(
        select(key, column).where(traces.found_in(column)).with_for_update()
    ):
        scrubbed = _scrubbed(value, traces)
        if scrubbed != value:
            db.session.execute(update(table).where(key == row_id).values({column: scrubbed}))


def _scrubbed(value: str, traces: Traces) -> str:
    """Free text scrubbed; a JSON detail has its string values scrubbed, its keys kept."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return traces.scrub(value)
    if not isinstance(parsed, dict | list):
        return traces.scrub(value)
    cleaned = _scrub_json(parsed, traces)
    return value if cleaned == parsed else json.dumps(cleaned, ensure_ascii=False)


def _scrub_json(value: Any, traces: Traces) -> Any:
    if isinstance(value, str):
        return traces.scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_json(v, traces) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v, traces) for v in value]
    return value
