"""Processing calls in batches: process_call's rules, in a handful of statements per batch.

One task per call tops out near a thousand calls a second on two cores; a drive's spike is
larger. Joins, nearly every call, are written with multi-row statements (volunteers.bulk), in
rounds of one call per caller so that a person's calls apply in the order they came (received_at,
then id, as services.in_processing_order); opt-outs go through process_call, in the same
transaction, so their rules live in one place.
tests/integration/test_batch_processing.py checks both paths give the same rows.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select, update

from signup import clock
from signup import database as dbx
from signup.calls.models import Call, CallOutcome, CallState
from signup.calls.services import JoinCall, flooding_calls, process_call, superseded_joins
from signup.campaigns.models import Campaign
from signup.extensions import db
from signup.phones import Phone, PhoneKind
from signup.volunteers import bulk
from signup.volunteers import services as volunteers
from signup.volunteers.models import ConsentEventType

log = logging.getLogger(__name__)

_JOIN_OUTCOMES = {
    ConsentEventType.GIVEN: CallOutcome.JOINED,
    ConsentEventType.REGIVEN: CallOutcome.REJOINED,
}


@dataclass(frozen=True, slots=True)
class _Pending:
    """A locked, unprocessed call, as read for the batch."""

    id: int
    phone: Phone
    called: str | None
    received_at: datetime


@dataclass(slots=True)
class BatchResult:
    """What a batch did: outcomes counted, and the messages to publish after commit."""

    outcomes: Counter[str] = field(default_factory=Counter)
    message_ids: list[int] = field(default_factory=list)


def process_batch(call_ids: list[int]) -> BatchResult:
    """Apply these calls exactly once, in one transaction (flushes only; the caller commits).

    Calls already processed, or taken by another worker that committed, are skipped.
    """
    result = BatchResult()
    pending = _lock_pending(call_ids)
    if not pending:
        return result
    routes = _routes({p.called for p in pending if p.called})
    finished: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    to_apply: list[_Pending] = []
    joins: list[JoinCall] = []
    for call in pending:
        campaign, is_optout = routes.get(call.called or "", (None, False))
        if campaign is None:
            finished[(CallOutcome.UNROUTED, None)].append(call.id)
        elif not call.phone.is_person:
            finished[(CallOutcome.NO_CALLER, campaign.id)].append(call.id)
        elif is_optout:  # withdrawal always wins: no flood or ordering rule holds it back
            to_apply.append(call)
        else:
            joins.append(JoinCall(call.id, call.phone.e164 or "", campaign, call.received_at))
    volunteers.lock_people([j.caller for j in joins] + [c.phone.e164 or "" for c in to_apply])
    flooding = flooding_calls([(j.id, j.caller, j.received_at) for j in joins])
    superseded = superseded_joins([j for j in joins if j.id not in flooding])
    for join in joins:
        if join.id in flooding:
            finished[(CallOutcome.FLOODING, join.campaign.id)].append(join.id)
        elif join.id in superseded:
            finished[(CallOutcome.SUPERSEDED, join.campaign.id)].append(join.id)
    applied = {j.id for j in joins if j.id not in flooding and j.id not in superseded}
    to_apply += [call for call in pending if call.id in applied]
    by_caller: dict[str, deque[_Pending]] = defaultdict(deque)
    for call in sorted(to_apply, key=lambda c: (c.received_at, c.id)):
        by_caller[call.phone.e164 or ""].append(call)
    # Rounds of one call per caller keep each person's calls in the order they came.
    while by_caller:
        heads = [calls.popleft() for calls in by_caller.values()]
        by_caller = {caller: calls for caller, calls in by_caller.items() if calls}
        _round(heads, routes, finished, result)
    _finish(finished, result)
    db.session.flush()
    return result


def _round(
    heads: list[_Pending],
    routes: dict[str, tuple[Campaign, bool]],
    finished: dict[tuple[str, int | None], list[int]],
    result: BatchResult,
) -> None:
    """Apply one call from each of many distinct callers: joins together, opt-outs singly."""
    joiners: list[bulk.Joiner] = []
    for call in heads:
        campaign, is_optout = routes[call.called or ""]
        if is_optout:  # rare, and never creates anyone: the one-call rules apply it
            processed = process_call(call.id)
            if processed is not None:
                result.outcomes[processed.outcome] += 1
                result.message_ids.extend(processed.message_ids)
        else:
            joiners.append(bulk.Joiner(call.id, call.phone, call.received_at, campaign))
    joined_calls = bulk.join_callers(joiners)
    for joiner in joiners:
        joined = joined_calls[joiner.call_id]
        outcome = _JOIN_OUTCOMES.get(joined.consent, CallOutcome.REPEAT)  # type: ignore[arg-type]
        finished[(outcome, joiner.campaign.id)].append(joiner.call_id)
        if joined.message is not None and joined.message.due:
            result.message_ids.append(joined.message.id)


def _lock_pending(call_ids: list[int]) -> list[_Pending]:
    """Lock the batch's unprocessed calls in id order (one lock order for every worker)."""
    rows = db.session.execute(
        select(Call.id, Call.caller, Call.caller_kind, Call.called, Call.received_at)
        .where(
            dbx.id_in(Call.id, sorted(call_ids)),
            Call.state.not_in([CallState.DONE, CallState.FAILED]),
        )
        .order_by(Call.id)
        .with_for_update(key_share=True)
    )
    return [
        _Pending(call_id, Phone(caller, PhoneKind(kind)), called, received_at)
        for call_id, caller, kind, called, received_at in rows
    ]


def _routes(called: set[str]) -> dict[str, tuple[Campaign, bool]]:
    """Dialled number -> (campaign, is the opt-out number), for every number in the batch."""
    if not called:
        return {}
    numbers = sorted(called)
    routes: dict[str, tuple[Campaign, bool]] = {}
    for campaign in db.session.scalars(
        select(Campaign).where(
            or_(Campaign.number.in_(numbers), Campaign.optout_number.in_(numbers))
        )
    ):
        if campaign.optout_number in called:
            routes[campaign.optout_number] = (campaign, True)
        if campaign.number in called:
            routes[campaign.number] = (campaign, False)
    return routes


def _finish(finished: dict[tuple[str, int | None], list[int]], result: BatchResult) -> None:
    """Mark the batch's calls done with their outcome and campaign, one UPDATE per outcome."""
    at = clock.now()
    for (outcome, campaign_id), ids in sorted(finished.items(), key=lambda kv: str(kv[0])):
        db.session.execute(
            update(Call)
            .where(dbx.id_in(Call.id, sorted(ids)))
            .values(state=CallState.DONE, outcome=outcome, campaign_id=campaign_id, processed_at=at)
            .execution_options(synchronize_session=False)
        )
        result.outcomes[outcome] += len(ids)
