"""Batched processing gives exactly the rows that processing each call on its own gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from signup.calls import batch
from signup.calls import services as calls
from signup.calls.models import Call, CallState
from signup.calls.providers import InboundCall
from signup.calls.tasks import process_calls
from signup.extensions import db
from signup.messaging.models import Message
from signup.volunteers import bulk, erasure
from signup.volunteers import services as volunteers
from signup.volunteers.models import (
    ConsentChannel,
    ConsentEvent,
    Subscription,
    Suppression,
    Volunteer,
)
from tests.integration.factories import NUMBER, OPTOUT, campaign

pytestmark = pytest.mark.usefixtures("db_session")

OTHER = "+918047259730"
UNROUTED = "+918047259799"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _world(seed: int) -> list[int]:
    """Two campaigns, people in every prior state, and a shuffled day of calls; the call ids."""
    rng = random.Random(seed)
    jan = campaign()
    campaign("seva", OTHER, None, name="Seva")
    mobiles = [f"+9199112{n:05d}" for n in range(40)]
    # Earlier history: an opted-out person, an imported one, an erased one.
    quitter = volunteers.count_call(mobiles[0], START - timedelta(days=3))
    volunteers.join(quitter, jan, volunteers.normalise(mobiles[0]), _evidence())
    volunteers.opt_out(quitter, jan, volunteers.normalise(mobiles[0]), _evidence())
    db.session.add(Volunteer(phone=mobiles[1], status="imported", call_count=0))
    gone = volunteers.count_call(mobiles[2], START - timedelta(days=2))
    volunteers.join(gone, jan, volunteers.normalise(mobiles[2]), _evidence())
    db.session.flush()
    erasure.erase_volunteer(gone, "test")
    others = ["+91 80 4725 9000", "anonymous", "12345", "+1 415 555 0100", "०९९११२०००४५"]
    flooder = mobiles[3]
    plan: list[tuple[str, str]] = [(flooder, NUMBER)] * 14
    for _ in range(160):
        caller = rng.choice(mobiles + others)
        to = rng.choices([NUMBER, OPTOUT, OTHER, UNROUTED], weights=[70, 10, 15, 5])[0]
        plan.append((caller, to))
    rng.shuffle(plan)
    ids = []
    for index, (caller, to) in enumerate(plan):
        sid = f"CA{seed:04d}{index:028x}"
        at = START + timedelta(seconds=20 * index)
        calls.record_inbound(InboundCall("twilio", sid, caller, to), received_at=at)
    db.session.flush()
    ids = list(db.session.scalars(select(Call.id).order_by(Call.id)))
    return ids


def _evidence() -> volunteers.Evidence:
    return volunteers.Evidence(ConsentChannel.ORGANISER)


def _snapshot() -> dict[str, Any]:
    """Every row processing writes, keyed by what is the same in both runs (never serial ids)."""
    db.session.expire_all()
    phone = {v.id: v.phone for v in db.session.scalars(select(Volunteer))}
    return {
        "calls": sorted(
            (c.id, c.state, c.outcome, c.campaign_id) for c in db.session.scalars(select(Call))
        ),
        "volunteers": sorted(
            (
                v.phone,
                v.status,
                v.call_count,
                v.first_call_at,
                v.last_call_at,
                v.consent_at is not None,
                v.opted_out_at is not None,
            )
            for v in db.session.scalars(select(Volunteer))
        ),
        "subscriptions": sorted(
            (phone[s.volunteer_id], s.campaign_id, s.status, s.withdrawals)
            for s in db.session.scalars(select(Subscription))
        ),
        "consent": sorted(
            (phone[e.volunteer_id], e.campaign_id, e.event, e.channel, e.call_id or 0)
            for e in db.session.scalars(select(ConsentEvent))
        ),
        "messages": sorted(
            (phone[m.volunteer_id], m.campaign_id, m.kind, m.round, m.status, m.body)
            for m in db.session.scalars(select(Message))
        ),
        "suppressions": sorted(s.phone_hash for s in db.session.scalars(select(Suppression))),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_of_any_size_match_processing_one_by_one(seed: int) -> None:
    ids = _world(seed)
    one_by_one = db.session.begin_nested()
    published_singly = []
    for call_id in ids:
        result = calls.process_call(call_id)
        assert result is not None
        published_singly += result.message_ids
    expected = _snapshot()
    one_by_one.rollback()

    rng = random.Random(seed)
    published, start = [], 0
    while start < len(ids):
        size = rng.choice([1, 5, 40, 200])
        result = batch.process_batch(ids[start : start + size])
        published += result.message_ids
        start += size
    assert _snapshot() == expected
    assert len(published) == len(published_singly)
    outcomes = {c[2] for c in expected["calls"]}
    # The scenario really exercises every path.
    assert {"joined", "rejoined", "repeat", "opted_out", "unrouted", "no_caller", "flooding"} <= (
        outcomes
    )
    assert all(state == CallState.DONE for _, state, _, _ in expected["calls"])


def test_a_processed_batch_is_skipped_when_delivered_again() -> None:
    ids = _world(7)
    first = batch.process_batch(ids)
    before = _snapshot()
    again = batch.process_batch(ids)
    assert first.message_ids and again.message_ids == [] and not again.outcomes
    assert _snapshot() == before


def test_join_callers_refuses_a_caller_twice() -> None:
    jan = campaign()
    phone = volunteers.normalise("+919911200001")
    joiner = bulk.Joiner(1, phone, START, jan)
    with pytest.raises(ValueError, match="distinct"):
        bulk.join_callers([joiner, joiner])


def test_the_task_falls_back_to_one_by_one_when_the_batch_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = _world(11)
    db.session.commit()  # the task rolls back to here when the batch fails

    def broken(joiners: list[bulk.Joiner]) -> dict[int, bulk.Joined]:
        raise RuntimeError("poison")

    monkeypatch.setattr(bulk, "join_callers", broken)
    monkeypatch.setattr("signup.calls.tasks.publish_all", lambda task, chunks: len(chunks))
    process_calls.run(ids)
    states = set(db.session.scalars(select(Call.state)))
    assert states == {CallState.DONE}
