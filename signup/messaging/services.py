"""The message outbox: create once, claim, send, record; retry transient failures later.

State machine: pending -> queued -> sending -> sent -> delivered | undelivered
                                       \\-> pending (transient, with backoff) | failed
A message left in `sending` by a dead worker becomes `unknown` (for review), never re-sent.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from sqlalchemy import and_, bindparam, exists, func, or_, select, update

from signup import clock
from signup import database as dbx
from signup.campaigns import services as campaigns
from signup.campaigns.models import Campaign
from signup.database import UTCDateTime
from signup.errors import ValidationError
from signup.extensions import db
from signup.logs import event
from signup.messaging import dlt, schedule, texts
from signup.messaging.models import Message, MessageKind, MessageStatus
from signup.messaging.providers import Dlt, OutboundSms, SendError, SendResult, SmsSender
from signup.messaging.ratelimit import LATE_TOLERANCE, RateLimiter, acquire_many
from signup.phones import mask
from signup.volunteers.models import Subscription, Volunteer, VolunteerStatus

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


def local_time(moment: datetime) -> str:
    """A time for log lines in the organisers' zone (SIGNUP_TIMEZONE), as they read clocks."""
    zone = ZoneInfo(current_app.config["SIGNUP_TIMEZONE"])
    return moment.astimezone(zone).isoformat(timespec="seconds")


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
    created = create_messages(campaign, kind, [(volunteer.id, volunteer.phone)], round_=round_)
    return created.get(volunteer.id)


def create_messages(
    campaign: Campaign, kind: MessageKind, recipients: list[tuple[int, str]], *, round_: int = 0
) -> dict[int, NewMessage]:
    """Add a message for each (volunteer id, phone) in one statement; keyed by volunteer.

    Pairs whose message exists already are absent from the result; inside quiet hours or a
    blackout the messages wait as `pending` until the window ends.
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
            "round": round_,
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
        ids = sorted(m.id for m in created.values())
        event(
            log,
            logging.INFO,
            "sms.deferred",
            message_ids=ids[:20],
            messages=len(ids),
            until=local_time(at),
        )
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


def _requeue_after() -> timedelta:
    """A message queued this long ago was lost by the broker (or its worker): publish again."""
    seconds = current_app.config.get("SMS_REQUEUE_AFTER")
    return timedelta(seconds=float(seconds)) if seconds else QUEUED_STALE_AFTER


CLAIMABLE = (MessageStatus.QUEUED, MessageStatus.PENDING)
WITHDRAWN_ERROR = "withdrawn before sending"
MESSAGES = Message.__table__


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message moved to `sending`: what its send and its record need, read by the claim."""

    id: int
    campaign_id: int
    kind: str
    to_phone: str
    body: str
    attempts: int


def _defer_campaign(message_ids: list[int], campaign_id: int, until: datetime) -> None:
    """Put the campaign's claimable messages among these back to pending until `until`."""
    table = MESSAGES
    result = db.session.execute(
        update(table)
        .where(
            table.c.id.in_(message_ids),
            table.c.campaign_id == campaign_id,
            table.c.status.in_(CLAIMABLE),
        )
        .values(status=MessageStatus.PENDING, next_attempt_at=until, updated_at=clock.now())
    )
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if count:
        event(
            log,
            logging.INFO,
            "sms.deferred",
            messages=count,
            campaign_id=campaign_id,
            until=local_time(until),
            reason="quiet_hours_or_blackout",
        )


def _drop_withdrawn(message_ids: list[int], at: datetime) -> None:
    """Fail the claimable messages among these that contradict the latest consent state.

    A withdrawal stops every SMS of that campaign but its own confirmation at once, also one
    created before it that waits for quiet hours, a blackout, a retry or the broker; and a
    confirmation is stale once a re-join (or a later withdrawal) superseded its withdrawal:
    only the confirmation of the current withdrawal (its round) goes.
    """
    table = MESSAGES
    current = exists().where(
        Subscription.volunteer_id == table.c.volunteer_id,
        Subscription.campaign_id == table.c.campaign_id,
        or_(
            and_(
                table.c.kind != MessageKind.OPTOUT_CONFIRMATION,
                Subscription.status == VolunteerStatus.ACTIVE,
            ),
            and_(
                table.c.kind == MessageKind.OPTOUT_CONFIRMATION,
                Subscription.status == VolunteerStatus.OPTED_OUT,
                Subscription.withdrawals == table.c.round,
            ),
        ),
    )
    dropped = db.session.execute(
        update(table)
        .where(table.c.id.in_(message_ids), table.c.status.in_(CLAIMABLE), ~current)
        .values(status=MessageStatus.FAILED, error_message=WITHDRAWN_ERROR, updated_at=at)
        .returning(table.c.id)
    ).all()
    if dropped:
        ids = sorted(message_id for (message_id,) in dropped)
        event(log, logging.INFO, "sms.withdrawn", message_ids=ids[:20], messages=len(ids))


def claim_batch(message_ids: Sequence[int], provider: str | None = None) -> list[Claimed]:
    """Move queued or pending messages to `sending` in one statement; skip what others hold.

    Quiet hours and blackouts are checked once per campaign: inside one, that campaign's
    messages go back to `pending` until the window ends. A duplicate delivery finds nothing to
    claim. The caller commits before calling the provider, so that a crash leaves evidence.
    """
    ids = list(message_ids)
    if not ids:
        return []
    table = MESSAGES
    at = clock.now()
    _drop_withdrawn(ids, at)
    campaign_ids = db.session.scalars(
        select(table.c.campaign_id)
        .where(table.c.id.in_(ids), table.c.status.in_(CLAIMABLE))
        .distinct()
    ).all()
    blocked: list[int] = []
    for campaign_id in campaign_ids:
        campaign = db.session.get(Campaign, campaign_id)
        allowed = send_time(campaign, at) if campaign is not None else at
        if allowed > at:
            _defer_campaign(ids, campaign_id, allowed)
            blocked.append(campaign_id)
    if len(blocked) == len(campaign_ids):
        return []
    values: dict[str, object] = {
        "status": MessageStatus.SENDING,
        "attempts": table.c.attempts + 1,
        "sending_at": at,
        "updated_at": at,
    }
    if provider is not None:
        values["provider"] = provider
    stmt = update(table).where(table.c.id.in_(ids), table.c.status.in_(CLAIMABLE))
    if blocked:
        stmt = stmt.where(table.c.campaign_id.not_in(blocked))
    rows = db.session.execute(
        stmt.values(**values).returning(
            table.c.id,
            table.c.campaign_id,
            table.c.kind,
            table.c.to_phone,
            table.c.body,
            table.c.attempts,
        )
    ).all()
    return sorted((Claimed(*row) for row in rows), key=lambda claimed: claimed.id)


def claim_for_sending(message_id: int) -> Message | None:
    """claim_batch for one message, returned as a fresh row; None if not claimable now."""
    if not claim_batch([message_id]):
        return None
    return db.session.get(Message, message_id, populate_existing=True)


class _DltRules:
    """DLT registrations per (campaign, kind) and body checks, each worked out once per batch."""

    def __init__(self) -> None:
        self._registrations: dict[tuple[int, str], tuple[Dlt, str] | None] = {}
        self._checked: dict[tuple[int, str, str], SendError | None] = {}

    def for_message(self, claimed: Claimed) -> Dlt | None:
        """The DLT registration to send under; SendError if the body no longer fits its template."""
        key = (claimed.campaign_id, claimed.kind)
        if key not in self._registrations:
            self._registrations[key] = self._registration(*key)
        found = self._registrations[key]
        if found is None:
            return None
        registration, template_text = found
        check = (*key, claimed.body)
        if check not in self._checked:
            try:
                dlt.match(claimed.body, template_text)
                self._checked[check] = None
            except ValidationError as exc:
                self._checked[check] = SendError(
                    f"DLT template {registration.template_id}: {exc}"[:255], transient=False
                )
        error = self._checked[check]
        if error is not None:
            raise error
        return registration

    @staticmethod
    def _registration(campaign_id: int, kind: str) -> tuple[Dlt, str] | None:
        campaign = db.session.get(Campaign, campaign_id)
        template = campaigns.template_for(campaign_id, kind)
        if (
            campaign is None
            or template is None
            or not (campaign.dlt_entity_id and campaign.dlt_header)
        ):
            return None
        return Dlt(campaign.dlt_entity_id, campaign.dlt_header, template.template_id), template.text


@dataclass(frozen=True, slots=True)
class Deferred:
    """A send that lost its rate-limit slot (it started too late) and got none soon enough."""

    wait: float


Attempt = SendResult | SendError | Deferred
MAX_RESLOTS = 5  # a sender woken late this many times in a row gives the message back


def _attempt(
    sender: SmsSender, sms: OutboundSms, not_before: float, limiter: RateLimiter
) -> Attempt:
    """Wait for the reserved slot, then send; every outcome comes back as a value.

    A sender that wakes more than LATE_TOLERANCE after its slot (a busy machine) takes a new
    slot instead, so late sends never bunch up above the rate.
    """
    for _ in range(MAX_RESLOTS):
        delay = not_before - time.monotonic()
        if delay > 0:
            time.sleep(delay)
            delay = not_before - time.monotonic()
        if delay >= -LATE_TOLERANCE:
            break
        grant = limiter.acquire(f"{sender.name}:{sender.account}")
        if not grant.reserved:
            return Deferred(grant.wait)
        not_before = grant.not_before
    else:
        return Deferred(0.0)
    try:
        return sender.send(sms)
    except SendError as exc:
        return exc
    except Exception as exc:  # a bug or an odd answer: the provider may have it, so never resend
        log.exception("sms.send_raised", extra={"message_id": sms.message_id})
        return SendError(
            f"{sender.name} send raised {type(exc).__name__}: it may have the message; review",
            transient=False,
            ambiguous=True,
        )


def send_claimed(
    claimed: Sequence[Claimed],
    sender: SmsSender,
    limiter: RateLimiter,
    executor: Executor | None = None,
) -> dict[int, DeliveryOutcome]:
    """Send claimed messages and record every outcome (flushed, not committed).

    Each send takes its slot in the provider account's shared rate limit (all slots in one
    round trip); a message whose slot is more than the limiter's longest wait away goes back
    to `pending` for that long. The claim is committed before any provider call, so the
    threads that wait on the provider hold no database connection; with an executor the sends
    overlap, each starting at its own slot.
    """
    results: dict[int, Attempt] = {}
    ready: list[OutboundSms] = []
    rules = _DltRules()
    for message in claimed:
        try:
            registration = rules.for_message(message)
        except SendError as exc:
            results[message.id] = exc
            continue
        ready.append(OutboundSms(message.id, message.to_phone, message.body, registration))
    grants = acquire_many(limiter, f"{sender.name}:{sender.account}", len(ready))
    now = clock.now()
    refused = [
        (sms.message_id, now + timedelta(seconds=grant.wait))
        for sms, grant in zip(ready, grants, strict=True)
        if not grant.reserved
    ]
    if refused:
        _defer_rate_limited(refused, now)
    slots = [
        (sms, grant.not_before) for sms, grant in zip(ready, grants, strict=True) if grant.reserved
    ]
    db.session.commit()  # `sending` is durable before the provider is called; no connection held
    if executor is None or len(slots) < 2:
        for sms, not_before in slots:
            results[sms.message_id] = _attempt(sender, sms, not_before, limiter)
    else:
        futures = {
            sms.message_id: executor.submit(_attempt, sender, sms, not_before, limiter)
            for sms, not_before in slots
        }
        for message_id, future in futures.items():
            results[message_id] = future.result()
    late = [
        (message_id, clock.now() + timedelta(seconds=result.wait))
        for message_id, result in results.items()
        if isinstance(result, Deferred)
    ]
    if late:
        _defer_rate_limited(late, clock.now())
    outcomes = _record(claimed, results, sender.name)
    for message_id, _ in refused + late:
        outcomes[message_id] = DeliveryOutcome(MessageStatus.PENDING)
    return outcomes


def _defer_rate_limited(refused: list[tuple[int, datetime]], now: datetime) -> None:
    """Put messages refused a rate-limit slot back to pending, their attempt not counted."""
    table = MESSAGES
    db.session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.status == MessageStatus.SENDING)
        .values(
            status=MessageStatus.PENDING,
            attempts=table.c.attempts - 1,
            next_attempt_at=bindparam("b_next", type_=UTCDateTime()),
            updated_at=now,
        ),
        [{"b_id": message_id, "b_next": until} for message_id, until in refused],
    )
    event(log, logging.INFO, "sms.deferred", messages=len(refused), reason="rate_limit")


def deliver(message: Message, sender: SmsSender, limiter: RateLimiter) -> DeliveryOutcome:
    """send_claimed for one claimed message; the row is refreshed with the outcome."""
    claimed = Claimed(
        message.id,
        message.campaign_id,
        message.kind,
        message.to_phone,
        message.body,
        message.attempts,
    )
    outcome = send_claimed([claimed], sender, limiter)[message.id]
    db.session.refresh(message)
    return outcome


def backoff(attempt: int, base: float | None = None) -> float:
    """Seconds to wait before retry number `attempt`: exponential, capped, with full jitter."""
    if base is None:
        base = backoff_base()
    ceiling = min(BACKOFF_CAP, base * 2 ** max(attempt - 1, 0))
    return random.uniform(ceiling / 2, ceiling)


def backoff_base() -> float:
    """SMS_BACKOFF_BASE: seconds before the first retry."""
    if not has_app_context():
        return BACKOFF_BASE
    return float(current_app.config.get("SMS_BACKOFF_BASE") or BACKOFF_BASE)


def _failure(exc: SendError, attempts: int, max_attempts: int) -> tuple[MessageStatus, float]:
    """What a failed attempt makes of the message, and the seconds until its retry."""
    if exc.ambiguous:
        return MessageStatus.UNKNOWN, 0.0  # may have been sent: for review, never resent
    if exc.transient and attempts < max_attempts:
        delay = backoff(attempts)
        if exc.retry_after:
            delay = max(delay, min(exc.retry_after, BACKOFF_CAP))
        return MessageStatus.PENDING, delay
    return MessageStatus.FAILED, 0.0


_FAILURE_EVENTS = {
    MessageStatus.UNKNOWN: (logging.ERROR, "sms.unknown"),
    MessageStatus.PENDING: (logging.WARNING, "sms.retry_scheduled"),
    MessageStatus.FAILED: (logging.ERROR, "sms.failed"),
}


def _record(
    claimed: Sequence[Claimed], results: Mapping[int, Attempt], provider: str
) -> dict[int, DeliveryOutcome]:
    """Write every attempt's outcome with one executemany UPDATE per kind of outcome."""
    table = MESSAGES
    now = clock.now()
    max_attempts = int(current_app.config.get("SMS_MAX_ATTEMPTS", 15))
    sent: list[dict[str, object]] = []
    failed: list[dict[str, object]] = []
    outcomes: dict[int, DeliveryOutcome] = {}
    for message in claimed:
        result = results.get(message.id)
        if result is None or isinstance(result, Deferred):
            continue
        if isinstance(result, SendResult):
            sent.append({"b_id": message.id, "b_sid": result.provider_message_id})
            outcomes[message.id] = DeliveryOutcome(MessageStatus.SENT)
            continue
        status, delay = _failure(result, message.attempts, max_attempts)
        failed.append(
            {
                "b_id": message.id,
                "b_status": status,
                "b_code": result.code,
                "b_error": str(result)[:255],
                "b_next": now + timedelta(seconds=delay)
                if status is MessageStatus.PENDING
                else None,
            }
        )
        outcomes[message.id] = DeliveryOutcome(status, opted_out=result.opted_out)
        level, name = _FAILURE_EVENTS[status]
        event(
            log,
            level,
            name,
            message_id=message.id,
            code=result.code,
            transient=result.transient,
            attempts=message.attempts,
            retry_in=round(delay, 1),
            to=mask(message.to_phone),
        )
    if sent:
        db.session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                status=MessageStatus.SENT,
                provider=provider,
                provider_message_id=bindparam("b_sid"),
                sent_at=now,
                error_code=None,
                error_message=None,
                updated_at=now,
            ),
            sent,
        )
        _log_sent(claimed, sent, provider)
    if failed:
        db.session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                provider=provider,
                error_code=bindparam("b_code"),
                error_message=bindparam("b_error"),
                next_attempt_at=func.coalesce(
                    bindparam("b_next", type_=UTCDateTime()), table.c.next_attempt_at
                ),
                updated_at=now,
            ),
            failed,
        )
    return outcomes


def _log_sent(claimed: Sequence[Claimed], sent: list[dict[str, object]], provider: str) -> None:
    """One `sms.sent` line per batch (a single message keeps its id, masked number, attempts)."""
    if len(claimed) == 1:
        [message] = claimed
        event(
            log,
            logging.INFO,
            "sms.sent",
            message_id=message.id,
            provider=provider,
            to=mask(message.to_phone),
            attempts=message.attempts,
        )
    else:
        event(log, logging.INFO, "sms.sent", messages=len(sent), provider=provider)


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
    provider: str,
    provider_message_id: str,
    status: MessageStatus,
    error_code: int | None,
    *,
    dnd: bool = False,
) -> bool:
    """Apply a provider's delivery report without ever moving a message backwards.

    Only a message that this provider sent is touched: a report naming another provider's id
    (a console id in an Exotel callback, say) is ignored. A failure with 30003 or 30008 is
    sent once more, later; 30004 (or a provider's DND failure) flags the volunteer as on the
    Do Not Call registry.
    """
    if status not in STATUS_RANK:
        return False  # queued/sending/accepted carry no news for us
    message = db.session.scalar(
        select(Message)
        .where(Message.provider == provider, Message.provider_message_id == provider_message_id)
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
