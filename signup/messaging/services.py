"""The message outbox: create once, claim, send, record; retry transient failures later.

State machine: pending -> queued -> sending -> sent -> delivered | undelivered
                                       \\-> pending (transient, with backoff) | failed
A message left in `sending` by a dead worker becomes `unknown` (for review), never re-sent.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import or_, select, update

from signup import clock
from signup import database as dbx
from signup.campaigns import services as campaigns
from signup.campaigns.models import Campaign
from signup.errors import ValidationError
from signup.extensions import db
from signup.logs import event
from signup.messaging import dlt, schedule, texts
from signup.messaging.models import Message, MessageKind, MessageStatus
from signup.messaging.providers import Dlt, OutboundSms, SendError, SmsSender
from signup.messaging.ratelimit import RateLimiter
from signup.phones import mask
from signup.volunteers.models import Volunteer

log = logging.getLogger(__name__)

BACKOFF_BASE = 2.0  # seconds before the first retry
BACKOFF_CAP = 600.0  # never wait more than ten minutes between tries
QUEUED_STALE_AFTER = timedelta(minutes=2)  # default of SMS_REQUEUE_AFTER
SENDING_STALE_AFTER = timedelta(minutes=10)  # default of SMS_SENDING_STALE_SECONDS

# Provider-reported states in the order they can happen; callbacks never move a message back.
STATUS_RANK = {
    MessageStatus.SENT: 1,
    MessageStatus.UNDELIVERED: 2,
    MessageStatus.FAILED: 2,
    MessageStatus.DELIVERED: 3,
}


AWAITING_SEND = frozenset({MessageStatus.PENDING, MessageStatus.QUEUED, MessageStatus.SENDING})


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one send attempt did."""

    status: MessageStatus
    opted_out: bool = False


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message created now; `due` says to publish it at once (else the relay sends it later)."""

    id: int
    due: bool


def send_time(campaign: Campaign, now: datetime) -> datetime:
    """The earliest moment from `now` outside quiet hours and the campaign's blackouts."""
    config = current_app.config
    quiet = schedule.parse_window(campaign.quiet_hours or config["SMS_QUIET_HOURS"])
    return schedule.next_send_time(
        now,
        quiet=quiet,
        zone=ZoneInfo(config["SIGNUP_TIMEZONE"]),
        blackouts=campaigns.blackouts(campaign.id, now),
    )


def create_message(
    volunteer: Volunteer, campaign: Campaign, kind: MessageKind, *, round_: int = 0
) -> NewMessage | None:
    """Add the message unless it exists (None then); inside quiet hours it waits as `pending`."""
    now = clock.now()
    at = send_time(campaign, now)
    due = at <= now
    stmt = (
        dbx.insert(Message)
        .values(
            volunteer_id=volunteer.id,
            campaign_id=campaign.id,
            kind=kind,
            round=round_,
            to_phone=volunteer.phone,
            body=texts.render(kind, campaign),
            status=MessageStatus.QUEUED if due else MessageStatus.PENDING,
            next_attempt_at=at,
            queued_at=now if due else None,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["volunteer_id", "campaign_id", "kind", "round"])
        .returning(Message.id)
    )
    message_id = db.session.scalar(stmt)
    if message_id is None:
        return None
    if not due:
        event(log, logging.INFO, "sms.deferred", message_id=message_id, until=at.isoformat())
    return NewMessage(message_id, due)


def create_messages(
    campaign: Campaign, kind: MessageKind, recipients: list[tuple[int, str]]
) -> dict[int, NewMessage]:
    """create_message for many (volunteer id, phone) pairs in one statement; keyed by volunteer.

    Pairs whose message exists already are absent from the result, as create_message's None.
    """
    if not recipients:
        return {}
    now = clock.now()
    at = send_time(campaign, now)
    due = at <= now
    body = texts.render(kind, campaign)
    rows = [
        {
            "volunteer_id": volunteer_id,
            "campaign_id": campaign.id,
            "kind": kind,
            "round": 0,
            "to_phone": phone,
            "body": body,
            "status": MessageStatus.QUEUED if due else MessageStatus.PENDING,
            "next_attempt_at": at,
            "queued_at": now if due else None,
            "created_at": now,
            "updated_at": now,
        }
        for volunteer_id, phone in sorted(recipients)
    ]
    table = Message.__table__
    insert, params = dbx.insert_many(table, rows)
    stmt = insert.on_conflict_do_nothing(
        index_elements=["volunteer_id", "campaign_id", "kind", "round"]
    ).returning(table.c.id, table.c.volunteer_id)
    created = {
        volunteer_id: NewMessage(message_id, due)
        for message_id, volunteer_id in db.session.execute(stmt, params)
    }
    if created and not due:
        event(log, logging.INFO, "sms.deferred", messages=len(created), until=at.isoformat())
    return created


def claim_due(limit: int) -> list[int]:
    """Mark due pending messages (and long-queued ones) queued; return their ids to publish."""
    at = clock.now()
    query = (
        select(Message.id)
        .where(
            or_(
                (Message.status == MessageStatus.PENDING) & (Message.next_attempt_at <= at),
                (Message.status == MessageStatus.QUEUED)
                & (Message.queued_at < at - _requeue_after()),
            )
        )
        .order_by(Message.next_attempt_at)
        .limit(limit)
    )
    ids = list(db.session.scalars(query.with_for_update(skip_locked=True)))
    if ids:
        db.session.execute(
            update(Message)
            .where(Message.id.in_(ids))
            .values(status=MessageStatus.QUEUED, queued_at=at, updated_at=at)
        )
    return ids


def release(message_ids: list[int]) -> None:
    """Put queued messages back to pending when their task could not be published."""
    db.session.execute(
        update(Message)
        .where(Message.id.in_(message_ids), Message.status == MessageStatus.QUEUED)
        .values(status=MessageStatus.PENDING)
    )


def _defer(message_id: int, until: datetime, reason: str, *, undo_attempt: bool = False) -> None:
    values: dict[str, object] = {
        "status": MessageStatus.PENDING,
        "next_attempt_at": until,
        "updated_at": clock.now(),
    }
    if undo_attempt:
        values["attempts"] = Message.attempts - 1
    db.session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.status.in_(
                [MessageStatus.QUEUED, MessageStatus.PENDING, MessageStatus.SENDING]
            ),
        )
        .values(**values)
    )
    event(
        log,
        logging.INFO,
        "sms.deferred",
        message_id=message_id,
        until=until.isoformat(),
        reason=reason,
    )


def _requeue_after() -> timedelta:
    """A message queued this long ago was lost by the broker (or its worker): publish again."""
    seconds = current_app.config.get("SMS_REQUEUE_AFTER")
    return timedelta(seconds=float(seconds)) if seconds else QUEUED_STALE_AFTER


def claim_for_sending(message_id: int) -> Message | None:
    """Move a queued or pending message to `sending`; None if another worker has it or it is done.

    Inside quiet hours or a blackout the message goes back to `pending` until the window ends.
    The caller commits before calling the provider, so that a crash leaves evidence.
    """
    at = clock.now()
    message = db.session.get(Message, message_id)
    if message is None or message.status not in (MessageStatus.QUEUED, MessageStatus.PENDING):
        return None
    campaign = db.session.get(Campaign, message.campaign_id)
    allowed = send_time(campaign, at) if campaign is not None else at
    if allowed > at:
        _defer(message_id, allowed, "quiet_hours_or_blackout")
        return None
    claimed = db.session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.status.in_([MessageStatus.QUEUED, MessageStatus.PENDING]),
        )
        .values(
            status=MessageStatus.SENDING,
            attempts=Message.attempts + 1,
            sending_at=at,
            updated_at=at,
        )
        .returning(Message.id)
    ).scalar()
    if claimed is None:
        return None
    return db.session.get(Message, message_id, populate_existing=True)


def _dlt(message: Message) -> Dlt | None:
    """The DLT registration to send under; SendError if the body no longer fits its template."""
    campaign = db.session.get(Campaign, message.campaign_id)
    template = campaigns.template_for(message.campaign_id, message.kind)
    if campaign is None or template is None or not (campaign.dlt_entity_id and campaign.dlt_header):
        return None
    try:
        dlt.match(message.body, template.text)
    except ValidationError as exc:
        raise SendError(
            f"DLT template {template.template_id}: {exc}"[:255], transient=False
        ) from exc
    return Dlt(campaign.dlt_entity_id, campaign.dlt_header, template.template_id)


def deliver(message: Message, sender: SmsSender, limiter: RateLimiter) -> DeliveryOutcome:
    """Call the provider for a claimed message and record what happened (flushed, not committed).

    Waits for a slot in the provider account's shared rate limit; when the wait would be long,
    the message goes back to `pending` for that long instead of holding the worker. The
    transaction is committed before the wait and the provider call, so a sending thread holds
    no database connection while it waits (a threads pool has far more threads than connections).
    """
    message.provider = sender.name
    try:
        sms = OutboundSms(message.id, message.to_phone, message.body, _dlt(message))
    except SendError as exc:
        return _record_failure(message, exc)
    grant = limiter.acquire(f"{sender.name}:{sender.account}")
    if not grant.reserved:
        _defer(
            message.id, clock.now() + timedelta(seconds=grant.wait), "rate_limit", undo_attempt=True
        )
        db.session.refresh(message)
        return DeliveryOutcome(MessageStatus.PENDING)
    db.session.commit()  # `sending` is durable before the provider is called; no connection held
    if grant.wait > 0:
        time.sleep(grant.wait)
    try:
        result = sender.send(sms)
    except SendError as exc:
        return _record_failure(message, exc)
    message.status = MessageStatus.SENT
    message.provider_message_id = result.provider_message_id
    message.sent_at = clock.now()
    message.error_code = None
    message.error_message = None
    db.session.flush()
    event(
        log,
        logging.INFO,
        "sms.sent",
        message_id=message.id,
        provider=sender.name,
        to=mask(message.to_phone),
        attempts=message.attempts,
    )
    return DeliveryOutcome(MessageStatus.SENT)


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number `attempt`: exponential, capped, with full jitter."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempt - 1, 0))
    return random.uniform(ceiling / 2, ceiling)


def _record_failure(message: Message, exc: SendError) -> DeliveryOutcome:
    message.error_code = exc.code
    message.error_message = str(exc)[:255]
    max_attempts = int(current_app.config.get("SMS_MAX_ATTEMPTS", 8))
    if exc.ambiguous:
        message.status = MessageStatus.UNKNOWN  # may have been sent: for review, never resent
        delay = 0.0
        level, name = logging.ERROR, "sms.unknown"
    elif exc.transient and message.attempts < max_attempts:
        delay = backoff(message.attempts)
        message.status = MessageStatus.PENDING
        message.next_attempt_at = clock.now() + timedelta(seconds=delay)
        level, name = logging.WARNING, "sms.retry_scheduled"
    else:
        message.status = MessageStatus.FAILED
        delay = 0.0
        level, name = logging.ERROR, "sms.failed"
    db.session.flush()
    event(
        log,
        level,
        name,
        message_id=message.id,
        code=exc.code,
        transient=exc.transient,
        attempts=message.attempts,
        retry_in=round(delay, 1),
        to=mask(message.to_phone),
    )
    return DeliveryOutcome(MessageStatus(message.status), opted_out=exc.opted_out)


def sending_stale_after() -> timedelta:
    """How long a send may take before a dead worker is assumed (longer than any HTTP timeout)."""
    seconds = current_app.config.get("SMS_SENDING_STALE_SECONDS")
    return timedelta(seconds=float(seconds)) if seconds else SENDING_STALE_AFTER


def mark_stale_sending_unknown() -> int:
    """Flag messages a dead worker left in `sending`: they may have gone out, so never resend."""
    at = clock.now()
    result = db.session.execute(
        update(Message)
        .where(
            Message.status == MessageStatus.SENDING,
            Message.sending_at < at - sending_stale_after(),
        )
        .values(status=MessageStatus.UNKNOWN, updated_at=at)
    )
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if count:
        event(log, logging.WARNING, "sms.marked_unknown", count=count)
    return count


RESEND_ONCE_CODES = frozenset({30003, 30008})  # unreachable handset, unknown carrier error
DND_CODES = frozenset({30004})  # Twilio: blocked, e.g. on India's Do Not Call registry
RESEND_DELAY = timedelta(minutes=30)


def apply_status(
    provider_message_id: str, status: MessageStatus, error_code: int | None, *, dnd: bool = False
) -> bool:
    """Apply a provider's delivery report without ever moving a message backwards.

    A failure with 30003 or 30008 is sent once more, later; 30004 (or a provider's DND failure)
    flags the volunteer as on the Do Not Call registry.
    """
    if status not in STATUS_RANK:
        return False  # queued/sending/accepted carry no news for us
    message = db.session.scalar(
        select(Message)
        .where(Message.provider_message_id == provider_message_id)
        .with_for_update(key_share=True)
    )
    if message is None or message.status in AWAITING_SEND:
        # Waiting to be sent again (a scheduled resend): the report is about the attempt
        # already applied, delivered once more by the provider's retry or a replay.
        return False
    current = STATUS_RANK.get(MessageStatus(message.status), 0)
    if STATUS_RANK[status] <= current and message.status != MessageStatus.UNKNOWN:
        return False
    if error_code is not None:
        message.error_code = error_code
    failed = status in (MessageStatus.UNDELIVERED, MessageStatus.FAILED)
    if failed and (dnd or error_code in DND_CODES):
        volunteer = db.session.get(Volunteer, message.volunteer_id)
        if volunteer is not None and volunteer.dnd_at is None:
            volunteer.dnd_at = clock.now()
    if failed and error_code in RESEND_ONCE_CODES and message.resends == 0:
        message.resends = 1
        message.status = MessageStatus.PENDING
        message.next_attempt_at = clock.now() + RESEND_DELAY
        message.error_message = f"{status} {error_code} from {provider_message_id}; resending"
        event(log, logging.INFO, "sms.resend_scheduled", message_id=message.id, code=error_code)
    else:
        message.status = status
    db.session.flush()
    return True
