"""The message outbox: create once, claim, send, record; retry transient failures later.

State machine: pending -> queued -> sending -> sent -> delivered | undelivered
                                       \\-> pending (transient, with backoff) | failed
A message left in `sending` by a dead worker becomes `unknown` (for review), never re-sent.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select, update

from signup import clock
from signup import database as dbx
from signup.campaigns.models import Campaign
from signup.extensions import db
from signup.logs import event
from signup.messaging import texts
from signup.messaging.models import Message, MessageKind, MessageStatus
from signup.messaging.providers import OutboundSms, SendError, SmsSender
from signup.phones import mask
from signup.volunteers.models import Volunteer

log = logging.getLogger(__name__)

BACKOFF_BASE = 2.0  # seconds before the first retry
BACKOFF_CAP = 600.0  # never wait more than ten minutes between tries
QUEUED_STALE_AFTER = timedelta(minutes=2)  # a published task that never ran is published again
SENDING_STALE_AFTER = timedelta(minutes=10)  # a worker that died mid-send leaves this behind

# Provider-reported states in the order they can happen; callbacks never move a message back.
STATUS_RANK = {
    MessageStatus.SENT: 1,
    MessageStatus.UNDELIVERED: 2,
    MessageStatus.FAILED: 2,
    MessageStatus.DELIVERED: 3,
}


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one send attempt did."""

    status: MessageStatus
    opted_out: bool = False


def create_message(
    volunteer: Volunteer, campaign: Campaign, kind: MessageKind, *, round_: int = 0
) -> int | None:
    """Add the message unless it exists; returns its id when created now, else None."""
    at = clock.now()
    stmt = (
        dbx.insert(Message)
        .values(
            volunteer_id=volunteer.id,
            campaign_id=campaign.id,
            kind=kind,
            round=round_,
            to_phone=volunteer.phone,
            body=texts.render(kind, campaign),
            status=MessageStatus.QUEUED,
            next_attempt_at=at,
            queued_at=at,
            created_at=at,
            updated_at=at,
        )
        .on_conflict_do_nothing(index_elements=["volunteer_id", "campaign_id", "kind", "round"])
        .returning(Message.id)
    )
    return db.session.scalar(stmt)


def claim_due(limit: int) -> list[int]:
    """Mark due pending messages (and long-queued ones) queued; return their ids to publish."""
    at = clock.now()
    query = (
        select(Message.id)
        .where(
            or_(
                (Message.status == MessageStatus.PENDING) & (Message.next_attempt_at <= at),
                (Message.status == MessageStatus.QUEUED)
                & (Message.queued_at < at - QUEUED_STALE_AFTER),
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


def claim_for_sending(message_id: int) -> Message | None:
    """Move a queued or pending message to `sending`; None if another worker has it or it is done.

    The caller commits before calling the provider, so that a crash leaves evidence.
    """
    at = clock.now()
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


def status_callback_url() -> str | None:
    """Where the provider should report delivery, when we know our public address."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    return f"{base.rstrip('/')}/webhooks/twilio/message-status" if base else None


def deliver(message: Message, sender: SmsSender) -> DeliveryOutcome:
    """Call the provider for a claimed message and record what happened (flushes, no commit)."""
    sms = OutboundSms(message.id, message.to_phone, message.body, status_callback_url())
    message.provider = sender.name
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
    if exc.transient and message.attempts < max_attempts:
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


def mark_stale_sending_unknown() -> int:
    """Flag messages a dead worker left in `sending`: they may have gone out, so never resend."""
    at = clock.now()
    result = db.session.execute(
        update(Message)
        .where(
            Message.status == MessageStatus.SENDING,
            Message.sending_at < at - SENDING_STALE_AFTER,
        )
        .values(status=MessageStatus.UNKNOWN, updated_at=at)
    )
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if count:
        event(log, logging.WARNING, "sms.marked_unknown", count=count)
    return count


def apply_status(provider_message_id: str, status: str, error_code: int | None) -> bool:
    """Apply a provider's delivery report without ever moving a message backwards."""
    try:
        new = MessageStatus(status)
    except ValueError:
        return False
    if new not in STATUS_RANK:
        return False  # queued/sending/accepted carry no news for us
    message = db.session.scalar(
        select(Message).where(Message.provider_message_id == provider_message_id)
    )
    if message is None:
        return False
    current = STATUS_RANK.get(MessageStatus(message.status), 0)
    if STATUS_RANK[new] <= current and message.status != MessageStatus.UNKNOWN:
        return False
    message.status = new
    if error_code is not None:
        message.error_code = error_code
    db.session.flush()
    return True
