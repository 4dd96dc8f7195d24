"""Record inbound calls (the outbox), claim them for processing, and process each once."""

from __future__ import annotations

import bisect
import functools
import logging
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, func, or_, select, update

from signup import clock
from signup import database as dbx
from signup.calls.models import Call, CallOutcome, CallState
from signup.calls.providers.base import InboundCall, clip
from signup.campaigns import services as campaigns
from signup.campaigns.models import Campaign
from signup.database import NO_KEY_UPDATE
from signup.extensions import db
from signup.logs import event
from signup.messaging.keywords import Keyword
from signup.messaging.models import InboundMessage
from signup.phones import Phone, PhoneKind, mask, normalise
from signup.volunteers import erasure
from signup.volunteers import services as volunteers
from signup.volunteers.models import (
    ConsentChannel,
    ConsentEvent,
    ConsentEventType,
    Suppression,
    Volunteer,
)

log = logging.getLogger(__name__)

MAX_PROCESS_ATTEMPTS = 5


@dataclass(slots=True)
class Processed:
    """What processing one call did, and the messages to publish after commit."""

    outcome: CallOutcome
    message_ids: list[int] = field(default_factory=list)


INSERT_COLUMNS = (
    "provider",
    "provider_call_id",
    "from_raw",
    "to_raw",
    "caller",
    "caller_kind",
    "called",
    "state",
    "attempts",
    "received_at",
)
_insert_statements: dict[str, Any] = {}


def _insert_call_statement() -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, built once per dialect (the hot path)."""
    dialect = dbx.dialect_name()
    statement = _insert_statements.get(dialect)
    if statement is None:
        table = Call.__table__
        statement = (
            dbx.insert(table)
            .values({name: bindparam(name) for name in INSERT_COLUMNS})
            .on_conflict_do_nothing(index_elements=["provider", "provider_call_id"])
            .returning(table.c.id)
        )
        _insert_statements[dialect] = statement
    return statement


def record_inbound(inbound: InboundCall, received_at: datetime | None = None) -> bool:
    """Insert the call unless its provider id is known; True when it is new (flushes only).

    `received_at` is given when a spooled call is replayed, so it keeps its real time.
    """
    return (
        db.session.execute(_insert_call_statement(), call_row(inbound, received_at)).scalar()
        is not None
    )


def call_row(inbound: InboundCall, received_at: datetime | None = None) -> dict[str, Any]:
    """The `calls` row recording an inbound call, numbers normalised (also the webhook's batch)."""
    caller = normalise(inbound.from_raw)
    called = normalise_dialled(inbound.to_raw)
    return {
        "provider": inbound.provider,
        "provider_call_id": inbound.provider_call_id,
        "from_raw": clip(inbound.from_raw),
        "to_raw": clip(inbound.to_raw),
        "caller": caller.e164,
        "caller_kind": str(caller.kind),
        "called": called.e164,
        "state": str(CallState.PENDING),
        "attempts": 0,
        "received_at": received_at or clock.now(),
    }


@functools.lru_cache(maxsize=256)
def normalise_dialled(raw: str) -> Phone:
    """normalise() for the dialled number, cached: a few campaign numbers receive every call."""
    return normalise(raw)


def claim_unprocessed(limit: int) -> list[int]:
    """Mark up to `limit` pending calls queued and return their ids, oldest first.

    Keeps at most RELAY_MAX_IN_FLIGHT calls queued so a backlog waits in the database,
    not in the broker; calls queued long ago (a lost task) are queued again.
    """
    at = clock.now()
    requeue_before = at - timedelta(seconds=current_app.config.get("RELAY_REQUEUE_AFTER", 300))
    in_flight = (
        db.session.scalar(
            select(func.count())
            .select_from(Call)
            .where(Call.state == CallState.QUEUED, Call.queued_at >= requeue_before)
        )
        or 0
    )
    room = min(limit, current_app.config.get("RELAY_MAX_IN_FLIGHT", 20000) - in_flight)
    if room <= 0:
        return []
    ids = list(
        db.session.scalars(
            select(Call.id)
            .where(
                or_(
                    Call.state == CallState.PENDING,
                    (Call.state == CallState.QUEUED) & (Call.queued_at < requeue_before),
                )
            )
            .order_by(Call.id)
            .limit(room)
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        db.session.execute(
            update(Call).where(Call.id.in_(ids)).values(state=CallState.QUEUED, queued_at=at)
        )
    return ids


def release(call_ids: list[int]) -> None:
    """Put queued calls back to pending when their task could not be published."""
    db.session.execute(
        update(Call)
        .where(Call.id.in_(call_ids), Call.state == CallState.QUEUED)
        .values(state=CallState.PENDING)
    )


def process_call(call_id: int) -> Processed | None:
    """Apply one call to the volunteer tables exactly once; None if already processed."""
    call = db.session.get(Call, call_id, with_for_update=NO_KEY_UPDATE, populate_existing=True)
    if call is None or call.state in (CallState.DONE, CallState.FAILED):
        return None
    phone = Phone(call.caller, PhoneKind(call.caller_kind))
    route = campaigns.route(call.called)
    result = Processed(CallOutcome.UNROUTED)
    if route is not None:
        call.campaign_id = route.campaign.id
        join = JoinCall(call.id, phone.e164 or "", route.campaign, call.received_at)
        volunteers.lock_people([join.caller])
        if not phone.is_person:
            result = Processed(CallOutcome.NO_CALLER)
        elif route.is_optout:  # withdrawal always wins: no flood or ordering rule holds it back
            result = _opt_out(call, phone, route.campaign)
        elif call.id in flooding_calls([(call.id, join.caller, call.received_at)]):
            result = Processed(CallOutcome.FLOODING)
        elif call.id in superseded_joins([join]):
            result = Processed(CallOutcome.SUPERSEDED)
        else:
            result = _join(call, phone, route.campaign)
    call.state = CallState.DONE
    call.outcome = result.outcome
    call.processed_at = clock.now()
    db.session.flush()
    return result


def flooding_calls(calls: list[tuple[int, str, datetime]]) -> set[int]:
    """Ids of the (id, caller, received_at) calls with more than FLOOD_CALLS_PER_HOUR calls
    from their number in the hour up to them; one query for any number of calls."""
    limit = int(current_app.config.get("FLOOD_CALLS_PER_HOUR") or 0)
    if limit <= 0 or not calls:
        return set()
    hour = timedelta(hours=1)
    times: dict[str, list[datetime]] = defaultdict(list)
    rows = db.session.execute(
        select(Call.caller, Call.received_at).where(
            Call.caller.in_(sorted({caller for _, caller, _ in calls})),
            Call.received_at > min(at for _, _, at in calls) - hour,
            Call.received_at <= max(at for _, _, at in calls),
        )
    )
    for caller, received_at in rows:
        times[caller or ""].append(received_at)
    for seen in times.values():
        seen.sort()
    flooding: set[int] = set()
    for call_id, caller, at in calls:
        seen = times[caller]
        recent = bisect.bisect_right(seen, at) - bisect.bisect_right(seen, at - hour)
        if recent > limit:
            flooding.add(call_id)
            event(log, logging.INFO, "call.flooding", caller=mask(caller), calls_last_hour=recent)
    return flooding


@dataclass(frozen=True, slots=True)
class JoinCall:
    """A person's call to a campaign's own number: a join, unless a later withdrawal outranks it."""

    id: int
    caller: str
    campaign: Campaign
    received_at: datetime


# Where a withdrawal has no call id to break a tie with a join made at the same moment, it wins.
_WINS_TIES = sys.maxsize
_Key = tuple[str, int | None]  # (caller, campaign id), None for every campaign


def superseded_joins(joins: list[JoinCall]) -> set[int]:
    """Ids of the join calls outranked by a withdrawal made later and already applied.

    Calls may be processed out of order (a failed batch retried, a spooled call replayed), so a
    join is weighed against every withdrawal applied so far by when each was made, not when it
    was processed: processed opt-out calls (received_at, then call id, the order processing
    applies calls in), STOP replies and erasures (every campaign), provider and organiser
    opt-outs; one query each. A withdrawal still waiting is applied after the join anyway.
    """
    if not joins:
        return set()
    latest = _latest_withdrawals(
        sorted({j.caller for j in joins}), min(j.received_at for j in joins)
    )
    superseded: set[int] = set()
    for join in joins:
        made = (join.received_at, join.id)
        for key in ((join.caller, join.campaign.id), (join.caller, None)):
            withdrawal = latest.get(key)
            if withdrawal is not None and withdrawal > made:
                superseded.add(join.id)
    return superseded


def _latest_withdrawals(callers: list[str], since: datetime) -> dict[_Key, tuple[datetime, int]]:
    """The latest withdrawal on record at or after `since` per (caller, campaign)."""
    latest: dict[_Key, tuple[datetime, int]] = {}

    def note(key: tuple[str | None, int | None], made: tuple[datetime, int]) -> None:
        if key[0] is not None and (key not in latest or made > latest[key]):
            latest[(key[0], key[1])] = made

    optout_calls = db.session.execute(
        select(Call.caller, Campaign.id, Call.received_at, Call.id)
        .join(Campaign, Campaign.optout_number == Call.called)
        .where(Call.caller.in_(callers), Call.received_at >= since, Call.state == CallState.DONE)
    )
    for caller, campaign_id, received_at, call_id in optout_calls:
        note((caller, campaign_id), (received_at, call_id))
    stops = db.session.execute(
        select(InboundMessage.sender, InboundMessage.received_at).where(
            InboundMessage.sender.in_(callers),
            InboundMessage.keyword == Keyword.STOP,
            InboundMessage.received_at >= since,
        )
    )
    for sender, received_at in stops:
        note((sender, None), (received_at, _WINS_TIES))
    opt_outs = db.session.execute(
        select(Volunteer.phone, ConsentEvent.campaign_id, ConsentEvent.recorded_at)
        .join(Volunteer, Volunteer.id == ConsentEvent.volunteer_id)
        .where(
            Volunteer.phone.in_(callers),
            ConsentEvent.event == ConsentEventType.WITHDRAWN,
            ConsentEvent.channel.in_([ConsentChannel.PROVIDER, ConsentChannel.ORGANISER]),
            ConsentEvent.recorded_at >= since,
        )
    )
    for phone, event_campaign_id, recorded_at in opt_outs:  # None: every campaign
        note((phone, event_campaign_id), (recorded_at, _WINS_TIES))
    hashes = {erasure.phone_hash(caller): caller for caller in callers}
    erased = db.session.execute(
        select(Suppression.phone_hash, Suppression.created_at).where(
            Suppression.phone_hash.in_(sorted(hashes)), Suppression.created_at >= since
        )
    )
    for phone_hash, created_at in erased:
        note((hashes[phone_hash], None), (created_at, _WINS_TIES))
    return latest


def log_outcomes(call_ids: list[int]) -> None:
    """One `call.processed` line per processed call: its outcome, the caller masked.

    What happened to a call (joined, repeat, withheld, unrouted, flooding…) is then visible in
    the log, not only in the database; one query per batch, after its commit.
    """
    if not call_ids or not log.isEnabledFor(logging.INFO):
        return
    rows = db.session.execute(
        select(Call.id, Call.caller, Call.caller_kind, Call.outcome)
        .where(Call.id.in_(call_ids), Call.state == CallState.DONE)
        .order_by(Call.id)
    )
    for call_id, caller, kind, outcome in rows:
        event(
            log,
            logging.INFO,
            "call.processed",
            call_id=call_id,
            caller=mask(caller) if caller else kind,
            outcome=outcome,
        )


def in_processing_order(call_ids: list[int]) -> list[int]:
    """These calls in the order processing applies them: by when they came, then by id."""
    return list(
        db.session.scalars(
            select(Call.id)
            .where(dbx.id_in(Call.id, sorted(call_ids)))
            .order_by(Call.received_at, Call.id)
        )
    )


def purge_raw_strings(older_than_days: int, batch: int = 10_000) -> int:
    """Blank the raw From/To of calls older than the retention age; returns how many."""
    cutoff = clock.now() - timedelta(days=older_than_days)
    total = 0
    while True:
        ids = list(
            db.session.scalars(
                select(Call.id)
                .where(Call.received_at < cutoff, Call.from_raw.is_not(None))
                .limit(batch)
            )
        )
        if not ids:
            return total
        db.session.execute(update(Call).where(Call.id.in_(ids)).values(from_raw=None, to_raw=None))
        db.session.commit()  # short transactions: never hold a million row locks
        total += len(ids)


def _join(call: Call, phone: Phone, campaign: Campaign) -> Processed:
    assert phone.e164 is not None
    volunteer = volunteers.count_call(phone.e164, call.received_at)
    evidence = volunteers.Evidence(ConsentChannel.MISSED_CALL, call_id=call.id)
    change = volunteers.join(volunteer, campaign, phone, evidence)
    outcome = {
        ConsentEventType.GIVEN: CallOutcome.JOINED,
        ConsentEventType.REGIVEN: CallOutcome.REJOINED,
    }.get(change.consent, CallOutcome.REPEAT)  # type: ignore[arg-type]
    return Processed(outcome, change.message_ids)


def _opt_out(call: Call, phone: Phone, campaign: Campaign) -> Processed:
    assert phone.e164 is not None
    if volunteers.find_by_phone(phone.e164, lock=True) is None:
        return Processed(CallOutcome.NOT_A_VOLUNTEER)  # never add a person who asked to leave
    volunteer = volunteers.count_call(phone.e164, call.received_at)
    evidence = volunteers.Evidence(ConsentChannel.OPTOUT_CALL, call_id=call.id)
    change = volunteers.opt_out(volunteer, campaign, phone, evidence)
    if change.consent is None:
        return Processed(CallOutcome.ALREADY_OPTED_OUT)
    return Processed(CallOutcome.OPTED_OUT, change.message_ids)


def record_failure(call_id: int, error: Exception) -> None:
    """Count a failed processing attempt; after MAX_PROCESS_ATTEMPTS the call is `failed`.

    A call to an opt-out number is never given up: a withdrawal is kept pending, and retried
    by every relay run, until it applies (each failure is logged at ERROR, for an alert).
    """
    call = db.session.get(Call, call_id, with_for_update=NO_KEY_UPDATE, populate_existing=True)
    if call is None or call.state == CallState.DONE:
        return
    call.attempts += 1
    route = campaigns.route(call.called)
    withdrawal = route is not None and route.is_optout
    if call.attempts >= MAX_PROCESS_ATTEMPTS and not withdrawal:
        call.state = CallState.FAILED
    else:
        call.state = CallState.PENDING
    db.session.flush()
    event(
        log,
        logging.ERROR,
        "call.process_failed",
        call_id=call_id,
        attempts=call.attempts,
        error=type(error).__name__,
        final=call.state == CallState.FAILED,
        withdrawal=withdrawal,
    )
