"""Processing a call: one volunteer per person, consent recorded, one onboarding SMS."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from signup.calls import services as calls
from signup.calls.models import Call, CallOutcome, CallState
from signup.extensions import db
from signup.messaging.models import Message, MessageKind, MessageStatus
from signup.volunteers.models import ConsentEvent, Subscription, Volunteer
from tests.integration.factories import NUMBER, OPTOUT, campaign, inbound

MOBILE = "+919911278181"
pytestmark = pytest.mark.usefixtures("db_session")


def volunteers() -> list[Volunteer]:
    return list(db.session.scalars(select(Volunteer).order_by(Volunteer.id)))


def messages() -> list[Message]:
    return list(db.session.scalars(select(Message).order_by(Message.id)))


def consents() -> list[tuple[str, str, int | None]]:
    rows = db.session.execute(
        select(ConsentEvent.event, ConsentEvent.channel, ConsentEvent.call_id).order_by(
            ConsentEvent.id
        )
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def process(from_: str, to: str = NUMBER) -> tuple[Call, calls.Processed | None]:
    call = inbound(from_, to)
    result = calls.process_call(call.id)
    return call, result


def test_first_call_makes_a_volunteer_consent_and_onboarding_message() -> None:
    jan = campaign()
    call, result = process("099112 78181")
    assert result is not None and result.outcome is CallOutcome.JOINED
    [volunteer] = volunteers()
    assert volunteer.phone == MOBILE
    assert volunteer.status == "active"
    assert volunteer.call_count == 1
    assert volunteer.first_call_at == volunteer.last_call_at == call.received_at
    assert volunteer.consent_at is not None
    assert consents() == [("given", "missed_call", call.id)]
    [message] = messages()
    assert result.message_ids == [message.id]
    assert (message.kind, message.status, message.to_phone) == ("onboarding", "queued", MOBILE)
    assert jan.name in message.body and OPTOUT in message.body
    assert call.state == CallState.DONE and call.campaign_id == jan.id
    event = db.session.scalar(select(ConsentEvent))
    assert event is not None and event.notice_version == jan.notice_version


def test_repeat_calls_count_but_never_send_again() -> None:
    campaign()
    process("+919911278181")
    for _ in range(3):
        _, result = process("919911278181")
        assert result is not None
        assert result.outcome is CallOutcome.REPEAT and result.message_ids == []
    [volunteer] = volunteers()
    assert volunteer.call_count == 4
    assert len(messages()) == 1
    assert [c[0] for c in consents()] == ["given"]


def test_processing_the_same_call_twice_changes_nothing_the_second_time() -> None:
    campaign()
    call = inbound(MOBILE)
    assert calls.process_call(call.id) is not None
    assert calls.process_call(call.id) is None
    assert volunteers()[0].call_count == 1
    assert len(messages()) == 1


def test_opt_out_number_withdraws_and_confirms_once() -> None:
    campaign()
    process(MOBILE)
    call, result = process(MOBILE, OPTOUT)
    assert result is not None and result.outcome is CallOutcome.OPTED_OUT
    [volunteer] = volunteers()
    assert volunteer.status == "opted_out" and volunteer.opted_out_at is not None
    assert volunteer.call_count == 2
    assert consents()[-1] == ("withdrawn", "opt_out_number", call.id)
    kinds = [(m.kind, m.round) for m in messages()]
    assert kinds == [("onboarding", 0), ("optout_confirmation", 1)]
    _, again = process(MOBILE, OPTOUT)
    assert again is not None and again.outcome is CallOutcome.ALREADY_OPTED_OUT
    assert len(messages()) == 2


def test_a_later_call_rejoins_with_new_consent_but_no_second_onboarding() -> None:
    campaign()
    process(MOBILE)
    process(MOBILE, OPTOUT)
    _, result = process(MOBILE)
    assert result is not None and result.outcome is CallOutcome.REJOINED
    assert volunteers()[0].status == "active"
    assert volunteers()[0].opted_out_at is None
    assert [c[0] for c in consents()] == ["given", "withdrawn", "re_given"]
    assert [m.kind for m in messages()] == ["onboarding", "optout_confirmation"]
    process(MOBILE, OPTOUT)  # a second withdrawal gets its own confirmation
    assert [(m.kind, m.round) for m in messages()][-1] == ("optout_confirmation", 2)


def test_opt_out_call_from_a_stranger_adds_nobody() -> None:
    campaign()
    _, result = process(MOBILE, OPTOUT)
    assert result is not None and result.outcome is CallOutcome.NOT_A_VOLUNTEER
    assert volunteers() == [] and messages() == []


def test_unrouted_call_is_recorded_without_volunteer() -> None:
    campaign()
    call, result = process(MOBILE, "+918000000000")
    assert result is not None and result.outcome is CallOutcome.UNROUTED
    assert call.campaign_id is None and call.state == CallState.DONE
    assert volunteers() == []


@pytest.mark.parametrize("caller", ["anonymous", "", "+91987654321", "garbage"])
def test_withheld_or_invalid_caller_makes_no_volunteer(caller: str) -> None:
    jan = campaign()
    call, result = process(caller)
    assert result is not None and result.outcome is CallOutcome.NO_CALLER
    assert call.campaign_id == jan.id
    assert volunteers() == [] and messages() == []


@pytest.mark.parametrize("caller", ["02261550789", "+14155552671", "18002662020"])
def test_non_mobile_callers_join_without_sms(caller: str) -> None:
    campaign()
    _, result = process(caller)
    assert result is not None and result.outcome is CallOutcome.JOINED
    assert len(volunteers()) == 1
    assert messages() == []


def test_one_person_in_two_campaigns_gets_each_onboarding_once() -> None:
    campaign("a", "+918047259725", "+918047259726")
    campaign("b", "+918047250000", None, name="Beta")
    process(MOBILE, "+918047259725")
    process(MOBILE, "+918047250000")
    process(MOBILE, "+918047250000")
    [volunteer] = volunteers()
    assert volunteer.call_count == 3
    assert len(messages()) == 2
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 2
    process(MOBILE, "+918047259726")  # leaving one campaign keeps them active in the other
    assert volunteers()[0].status == "active"


def test_out_of_order_processing_keeps_first_and_last_call_right() -> None:
    campaign()
    early = inbound(MOBILE)
    late = inbound(MOBILE)
    early.received_at, late.received_at = late.received_at, early.received_at
    db.session.flush()
    calls.process_call(early.id)  # the later call, processed first
    calls.process_call(late.id)
    [volunteer] = volunteers()
    assert volunteer.first_call_at == min(early.received_at, late.received_at)
    assert volunteer.last_call_at == max(early.received_at, late.received_at)


def test_failures_are_counted_and_become_final() -> None:
    campaign()
    call = inbound(MOBILE)
    for attempt in range(1, calls.MAX_PROCESS_ATTEMPTS + 1):
        calls.record_failure(call.id, RuntimeError("boom"))
        assert call.attempts == attempt
    assert call.state == CallState.FAILED
    assert calls.process_call(call.id) is None


def test_relay_claims_pending_calls_once_and_requeues_lost_ones(app: Any) -> None:
    campaign()
    ids = [inbound(f"+9199112{i:05d}").id for i in range(5)]
    assert calls.claim_unprocessed(3) == ids[:3]
    assert calls.claim_unprocessed(10) == ids[3:]
    assert calls.claim_unprocessed(10) == []
    app.config["RELAY_REQUEUE_AFTER"] = 0  # as if those tasks were lost by the broker
    try:
        assert calls.claim_unprocessed(10) == ids
    finally:
        app.config.pop("RELAY_REQUEUE_AFTER")


def test_relay_keeps_the_backlog_in_the_database(app: Any) -> None:
    campaign()
    for i in range(5):
        inbound(f"+9199112{i:05d}")
    app.config["RELAY_MAX_IN_FLIGHT"] = 2
    try:
        assert len(calls.claim_unprocessed(10)) == 2
        assert calls.claim_unprocessed(10) == []
    finally:
        app.config.pop("RELAY_MAX_IN_FLIGHT")


def test_consent_ledger_is_append_only() -> None:
    campaign()
    process(MOBILE)
    with pytest.raises(DBAPIError, match="append-only"), db.session.begin_nested():
        db.session.execute(text("UPDATE consent_events SET event = 'withdrawn'"))
    with pytest.raises(DBAPIError, match="append-only"), db.session.begin_nested():
        db.session.execute(text("DELETE FROM consent_events"))


def test_message_rows_are_unique_per_volunteer_campaign_kind_round() -> None:
    campaign()
    process(MOBILE)
    [message] = messages()
    with pytest.raises(DBAPIError), db.session.begin_nested():
        db.session.add(
            Message(
                volunteer_id=message.volunteer_id,
                campaign_id=message.campaign_id,
                kind=MessageKind.ONBOARDING,
                round=0,
                to_phone=MOBILE,
                body="x",
                status=MessageStatus.PENDING,
            )
        )
        db.session.flush()
