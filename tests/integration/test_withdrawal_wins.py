"""Withdrawal always wins: after any sequence of consent actions, the last withdrawal stands.

Random sequences of joins (some replayed late, as from the spool), floods, calls to the opt-out
number, STOP/START replies (also full-width or with invisible characters), Twilio's own
opt-outs (OptOutType STOP/START/HELP, whatever the body), carrier opt-outs (Twilio 21610),
erasures, imports (also after a withdrawal) and blackouts run through the real webhook services
and Celery tasks on PostgreSQL, processed in every way calls can be: one batch, one by one, a
failing batch that falls back, part of the backlog left for later, out of order; with sends in
and out of quiet hours between them. After every step, each person and campaign whose last
consent action was a withdrawal that has been applied is opted out, with a `withdrawn` event
after their last join; every opted-out person has their withdrawal in the ledger, and nobody who
withdrew is imported reachable. Every SMS sent agreed with the consent state when it went (a
confirmation only of the current withdrawal, nothing else while withdrawn), and at the end
nothing but the withdrawal's own confirmation was sent to them after it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis
import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from signup import clock
from signup.calls import batch
from signup.calls import services as calls
from signup.calls.models import Call, CallOutcome, CallState
from signup.calls.providers import InboundCall
from signup.calls.tasks import process_calls
from signup.campaigns import services as campaigns
from signup.campaigns.models import Campaign
from signup.extensions import db
from signup.messaging import keywords
from signup.messaging import services as msgservices
from signup.messaging.models import Message, MessageKind, MessageStatus
from signup.messaging.providers import OutboundSms, SendError, SendResult
from signup.messaging.ratelimit import LocalRateLimiter
from signup.messaging.tasks import send_message
from signup.volunteers import bulk, erasure, importer
from signup.volunteers import services as vservices
from signup.volunteers.models import (
    ConsentChannel,
    ConsentEvent,
    ConsentEventType,
    Subscription,
    Volunteer,
    VolunteerStatus,
)
from tests.integration.factories import NUMBER, OPTOUT, campaign

pytestmark = pytest.mark.usefixtures("db_session")

PEOPLE = ("+919911200001", "+919911200002", "+919911200003")
CAMPAIGNS = {"a": (NUMBER, OPTOUT), "b": ("+918047259730", "+918047259731")}
START = datetime(2026, 11, 20, 4, 30, tzinfo=UTC)  # 10:00 in Kolkata
QUIET = "09:00-12:00"  # around START: a send step with quiet hours on defers everything
NEVER = 2**62  # a non-call action at the same moment as a call comes after it

# One action: ("join", person, campaign, seconds_late) | ("flood", person, campaign, calls) |
# ("optout", person, campaign) | ("stop", person) | ("start", person) | ("carrier_stop", person)
# | ("erase", person) | ("import", person) | ("process", mode, seed) | ("send", quiet)
# | ("provider", person, OptOutType, body) | ("blackout", campaign, minutes).
people = st.sampled_from(PEOPLE[:2])
STOP_BODIES = ["STOP", "ＳＴＯＰ", "stop\u200b", "\u2060Stop", "बंद करो"]
slugs = st.sampled_from(sorted(CAMPAIGNS))
BUILDERS: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "join": st.tuples(st.just("join"), people, slugs, st.sampled_from([0, 0, 0, 5, 120])),
    "flood": st.tuples(st.just("flood"), people, slugs, st.integers(2, 5)),
    "optout": st.tuples(st.just("optout"), people, slugs),
    "stop": st.tuples(st.just("stop"), people, st.sampled_from(STOP_BODIES)),
    "start": st.tuples(st.just("start"), people),
    "carrier_stop": st.tuples(st.just("carrier_stop"), people),
    "erase": st.tuples(st.just("erase"), people),
    "import": st.tuples(st.just("import"), people),
    "process": st.tuples(
        st.just("process"),
        st.sampled_from(["batch", "singly", "failing", "part", "reversed"]),
        st.integers(0, 2**16),
    ),
    "send": st.tuples(st.just("send"), st.booleans()),
    "provider": st.tuples(
        st.just("provider"),
        people,
        st.sampled_from(["STOP", "START", "HELP"]),
        st.sampled_from(["ARRET", "please no more", "STOP", "START", "HELP"]),
    ),
    "blackout": st.tuples(st.just("blackout"), slugs, st.sampled_from([1, 30, 120])),
}
# Joins, opt-outs and processing most often; the rarer actions now and then.
KINDS = ["join"] * 5 + ["optout"] * 3 + ["process"] * 4 + ["send"] * 2 + sorted(BUILDERS)
actions = st.sampled_from(KINDS).flatmap(BUILDERS.__getitem__)
steps = st.lists(st.tuples(actions, st.sampled_from([0, 0, 1, 30])), min_size=3, max_size=30)


@dataclass
class Sender:
    """A provider that accepts every SMS except to numbers their carrier has opted out (21610)."""

    name: str = "fake"
    account: str = "fake"
    carrier_stopped: set[str] = field(default_factory=set)
    ids: Iterator[int] = field(default_factory=itertools.count)

    def send(self, sms: OutboundSms) -> SendResult:
        if sms.to in self.carrier_stopped:
            raise SendError("unsubscribed", code=21610, transient=False, opted_out=True)
        return SendResult(f"SM{next(self.ids):032x}")


@dataclass
class Model:
    """What each person last did, per campaign: (when, order, withdrawal, applied at step)."""

    last: dict[tuple[str, str], tuple[datetime, int, bool]] = field(default_factory=dict)
    # (person, slug) -> the step at which their last withdrawal took effect (None: not yet).
    applied: dict[tuple[str, str], int | None] = field(default_factory=dict)
    pending_optouts: dict[int, tuple[str, str]] = field(default_factory=dict)

    def act(self, person: str, slug: str, made: tuple[datetime, int], withdrawal: bool) -> None:
        """Note an action unless a later one is already known (a late call is older)."""
        key = (person, slug)
        if key not in self.last or made >= self.last[key][:2]:
            self.last[key] = (*made, withdrawal)
            self.applied.pop(key, None)

    def withdrawn(self) -> dict[tuple[str, str], int]:
        """(person, slug) whose last action is an applied withdrawal -> the step it applied."""
        return {
            key: step
            for key, (_, _, withdrawal) in self.last.items()
            if withdrawal and (step := self.applied.get(key)) is not None
        }


@pytest.fixture
def world(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sender]:
    """A fake provider without rate limits, publishing switched off, floods from 4 calls."""
    sender = Sender()
    saved = app.extensions["sms_sender"], app.extensions["sms_rate_limiter"]
    app.extensions["sms_sender"] = sender
    app.extensions["sms_rate_limiter"] = LocalRateLimiter(rate=1000, burst=1000, max_wait=1)
    app.config["FLOOD_CALLS_PER_HOUR"] = 3
    monkeypatch.setattr("signup.calls.tasks.publish_all", lambda task, chunks: len(chunks))
    yield sender
    app.extensions["sms_sender"], app.extensions["sms_rate_limiter"] = saved
    app.config["FLOOD_CALLS_PER_HOUR"] = 10
    app.config["SMS_QUIET_HOURS"] = "off"
    clock.set_clock(None)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=steps)
@example(  # issue 16, finding 10: a flood, then a call to the opt-out number
    sequence=[(("flood", PEOPLE[0], "a", 5), 1), (("optout", PEOPLE[0], "a"), 1)]
)
@example(  # a re-join inside a blackout: "you have left" must not follow the welcome back
    sequence=[
        (("join", PEOPLE[0], "a", 0), 1),
        (("process", "batch", 0), 1),
        (("send", False), 1),
        (("blackout", "a", 30), 1),
        (("optout", PEOPLE[0], "a"), 1),
        (("process", "batch", 0), 1),
        (("join", PEOPLE[0], "a", 0), 1),
        (("process", "batch", 0), 1),
    ]
)
@example(  # the same with quiet hours and Twilio's own START (OptOutType) as the re-join
    sequence=[
        (("join", PEOPLE[0], "a", 0), 1),
        (("process", "singly", 0), 1),
        (("optout", PEOPLE[0], "a"), 1),
        (("process", "singly", 0), 1),
        (("send", True), 1),
        (("provider", PEOPLE[0], "START", "please"), 1),
        (("send", True), 1),
    ]
)
@example(  # a stranger's STOP and opt-out call, then an organiser's list names them
    sequence=[
        (("stop", PEOPLE[0], "ＳＴＯＰ"), 1),
        (("optout", PEOPLE[1], "b"), 1),
        (("process", "batch", 0), 1),
        (("import", PEOPLE[0]), 1),
        (("import", PEOPLE[1]), 1),
    ]
)
@example(  # an imported person's provider opt-out is in the ledger
    sequence=[
        (("import", PEOPLE[0]), 1),
        (("provider", PEOPLE[0], "STOP", "ARRET"), 1),
        (("send", False), 1),
    ]
)
@example(  # an erased person's STOP outranks their join still waiting (found by this test)
    sequence=[
        (("join", PEOPLE[0], "a", 0), 0),
        (("import", PEOPLE[0]), 0),
        (("erase", PEOPLE[0]), 0),
        (("join", PEOPLE[0], "a", 0), 1),
        (("stop", PEOPLE[0], "STOP"), 0),
    ]
)
def test_the_last_withdrawal_always_stands(
    world: Sender, app: Flask, monkeypatch: pytest.MonkeyPatch, sequence: list[Any]
) -> None:
    run = Run(world, app, monkeypatch)
    for number, (action, advance) in enumerate(sequence):
        run.now += timedelta(seconds=advance)
        run.step = number
        run.do(action)
        run.check_state()
    run.finish()


class Run:
    """One example: a fresh database, the virtual clock, the model beside the real system."""

    def __init__(self, sender: Sender, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sender, self.app, self.monkeypatch = sender, app, monkeypatch
        self.now = START
        self.step = 0
        self.model = Model()
        self.sent: dict[int, int] = {}  # message id -> step it was sent at
        self.sids = itertools.count()
        clock.set_clock(lambda: self.now)
        db.session.rollback()  # whatever an earlier example left behind
        app.config["SMS_QUIET_HOURS"] = "off"
        sender.carrier_stopped.clear()
        tables = ", ".join(t.name for t in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        self.campaigns = {
            slug: campaign(slug, number, optout, name=f"Campaign {slug}")
            for slug, (number, optout) in CAMPAIGNS.items()
        }
        db.session.commit()

    # --- actions -----------------------------------------------------------------------------

    def do(self, action: tuple[Any, ...]) -> None:
        getattr(self, f"_{action[0]}")(*action[1:])

    def _call(self, person: str, to: str, late: int = 0) -> int:
        sid = f"CA{next(self.sids):032x}"
        received = self.now - timedelta(seconds=late)
        calls.record_inbound(InboundCall("twilio", sid, person, to), received_at=received)
        db.session.commit()
        return int(db.session.scalar(select(Call.id).where(Call.provider_call_id == sid)) or 0)

    def _join(self, person: str, slug: str, late: int) -> None:
        call_id = self._call(person, CAMPAIGNS[slug][0], late)
        self.model.act(person, slug, (self.now - timedelta(seconds=late), call_id), False)

    def _flood(self, person: str, slug: str, count: int) -> None:
        for _ in range(count):
            self._join(person, slug, 0)

    def _optout(self, person: str, slug: str) -> None:
        call_id = self._call(person, CAMPAIGNS[slug][1])
        self.model.act(person, slug, (self.now, call_id), True)
        self.model.pending_optouts[call_id] = (person, slug)

    def _reply(self, person: str, body: str) -> None:
        sid = f"SM{next(self.sids):032x}"
        keywords.handle_reply(keywords.Reply("twilio", sid, person, body))
        db.session.commit()

    def _stop(self, person: str, body: str = "STOP") -> None:
        self._reply(person, body)
        self._everywhere(person, withdrawal=True)

    def _provider(self, person: str, opt_out_type: str, body: str) -> None:
        """Twilio's Advanced Opt-Out matched (OptOutType): the field decides, not the body."""
        sid = f"SM{next(self.sids):032x}"
        reply = keywords.Reply("twilio", sid, person, body, provider_keyword=opt_out_type)
        keywords.handle_reply(reply)
        db.session.commit()
        if opt_out_type != "HELP":
            self._everywhere(person, withdrawal=opt_out_type == "STOP")

    def _blackout(self, slug: str, minutes: int) -> None:
        """A blackout on one campaign from now: its SMS wait until it ends."""
        end = self.now + timedelta(minutes=minutes)
        campaigns.add_blackout(self.campaigns[slug], starts_at=self.now, ends_at=end)
        db.session.commit()

    def _start(self, person: str) -> None:
        self._reply(person, "START")
        self._everywhere(person, withdrawal=False)

    def _everywhere(self, person: str, *, withdrawal: bool) -> None:
        for slug in CAMPAIGNS:
            self.model.act(person, slug, (self.now, NEVER), withdrawal)
            if withdrawal:
                self.model.applied[(person, slug)] = self.step

    def _carrier_stop(self, person: str) -> None:
        """They reply STOP to the carrier: we learn it from a 21610 at the next send to them."""
        self.sender.carrier_stopped.add(person)

    def _erase(self, person: str) -> None:
        volunteer = db.session.scalar(select(Volunteer).where(Volunteer.phone == person))
        if volunteer is None:
            return
        erasure.erase_volunteer(volunteer, "test")
        db.session.commit()
        self._everywhere(person, withdrawal=True)

    def _import(self, person: str) -> None:
        """An organiser's list names them: merged by the importer (no consent given here)."""
        importer.merge([importer.ImportRow(2, person, name="On a list")])
        db.session.commit()

    def _process(self, mode: str, seed: int) -> None:
        pending = list(
            db.session.scalars(
                select(Call.id)
                .where(Call.state.in_([CallState.PENDING, CallState.QUEUED]))
                .order_by(Call.id)
            )
        )
        if mode == "batch":
            process_calls.run(pending)
        elif mode == "singly":
            for call_id in pending:
                process_calls.run([call_id])
        elif mode == "reversed":
            for call_id in reversed(pending):
                process_calls.run([call_id])
        elif mode == "part":  # a batch that failed stays pending; later ones go through
            process_calls.run([c for i, c in enumerate(pending) if (seed >> (i % 16)) & 1])
        else:
            with self.monkeypatch.context() as patch:
                patch.setattr(bulk, "join_callers", _poisoned)
                process_calls.run(pending)
        self._note_applied_optouts()

    def _note_applied_optouts(self) -> None:
        done = db.session.scalars(
            select(Call.id).where(
                Call.id.in_(list(self.model.pending_optouts)), Call.state == CallState.DONE
            )
        )
        for call_id in done:
            person, slug = self.model.pending_optouts.pop(call_id)
            last = self.model.last[(person, slug)]
            if last[1] == call_id:
                self.model.applied[(person, slug)] = self.step

    def _send(self, quiet: bool) -> None:
        """Send what the relay would hand to workers now, inside or outside quiet hours."""
        self.app.config["SMS_QUIET_HOURS"] = QUIET if quiet else "off"
        try:
            due = list(
                db.session.scalars(
                    select(Message.id)
                    .where(
                        (Message.status == MessageStatus.QUEUED)
                        | (
                            (Message.status == MessageStatus.PENDING)
                            & (Message.next_attempt_at <= self.now)
                        )
                    )
                    .order_by(Message.id)
                )
            )
            before = self._provider_withdrawals()
            for message_id in due:
                if send_message.run(message_id) == MessageStatus.SENT:
                    self.sent[message_id] = self.step
                    self._check_sent_agrees(message_id)
            for event_id, (person, slug) in self._provider_withdrawals().items():
                if event_id not in before:
                    self.model.act(person, slug, (self.now, NEVER), True)
                    self.model.applied[(person, slug)] = self.step
        finally:
            self.app.config["SMS_QUIET_HOURS"] = "off"

    def _provider_withdrawals(self) -> dict[int, tuple[str, str]]:
        """Withdrawals the provider reported (21610): consent event id -> (person, slug)."""
        slug_of = {c.id: slug for slug, c in self.campaigns.items()}
        rows = db.session.execute(
            select(ConsentEvent.id, Volunteer.phone, ConsentEvent.campaign_id)
            .join(Volunteer, Volunteer.id == ConsentEvent.volunteer_id)
            .where(
                ConsentEvent.channel == ConsentChannel.PROVIDER,
                ConsentEvent.message_id.is_not(None),  # a send's 21610, not an OptOutType
            )
        )
        return {event_id: (phone, slug_of[campaign_id]) for event_id, phone, campaign_id in rows}

    # --- what must hold ----------------------------------------------------------------------

    def _check_sent_agrees(self, message_id: int) -> None:
        """An SMS just sent agrees with its subscription now: a confirmation of the current
        withdrawal (not one a re-join or a later withdrawal superseded), anything else only
        while subscribed."""
        db.session.expire_all()
        message = db.session.get(Message, message_id)
        assert message is not None
        sub = db.session.scalar(
            select(Subscription).where(
                Subscription.volunteer_id == message.volunteer_id,
                Subscription.campaign_id == message.campaign_id,
            )
        )
        state = (message.kind, message.round, sub and (sub.status, sub.withdrawals))
        if message.kind == MessageKind.OPTOUT_CONFIRMATION:
            assert sub is not None and sub.status == VolunteerStatus.OPTED_OUT, state
            assert sub.withdrawals == message.round, state
        else:
            assert sub is not None and sub.status == VolunteerStatus.ACTIVE, state

    def check_ledger(self) -> None:
        """Every withdrawal is in the ledger, and nobody who withdrew is imported reachable."""
        erased = Volunteer.status == VolunteerStatus.ERASED  # their ledger says `erased`
        for volunteer in db.session.scalars(select(Volunteer).where(~erased)):
            withdrawn = {
                campaign_id
                for (campaign_id,) in db.session.execute(
                    select(ConsentEvent.campaign_id).where(
                        ConsentEvent.volunteer_id == volunteer.id,
                        ConsentEvent.event == ConsentEventType.WITHDRAWN,
                    )
                )
            }
            if volunteer.status == VolunteerStatus.OPTED_OUT:
                assert withdrawn, (volunteer.phone, "opted out without a ledger row")
            for sub in db.session.scalars(
                select(Subscription).where(Subscription.volunteer_id == volunteer.id)
            ):
                if sub.status == VolunteerStatus.OPTED_OUT:
                    assert sub.campaign_id in withdrawn, (volunteer.phone, sub.campaign_id)
            if any(person == volunteer.phone for person, _ in self.model.withdrawn()):
                assert volunteer.status != VolunteerStatus.IMPORTED, volunteer.phone

    def check_state(self) -> None:
        """Every applied last withdrawal is in force: opted out, the ledger ending in it."""
        db.session.expire_all()
        self.check_ledger()
        for (person, slug), _ in self.model.withdrawn().items():
            campaign_id = self.campaigns[slug].id
            volunteer = db.session.scalar(select(Volunteer).where(Volunteer.phone == person))
            if volunteer is None:
                continue  # never joined, or erased: nobody to contact
            sub = db.session.scalar(
                select(Subscription).where(
                    Subscription.volunteer_id == volunteer.id,
                    Subscription.campaign_id == campaign_id,
                )
            )
            assert sub is None or sub.status == VolunteerStatus.OPTED_OUT, (person, slug)
            active = db.session.scalar(
                select(func.count())
                .select_from(Subscription)
                .where(
                    Subscription.volunteer_id == volunteer.id,
                    Subscription.status == VolunteerStatus.ACTIVE,
                )
            )
            if sub is not None and not active:
                assert volunteer.status == VolunteerStatus.OPTED_OUT
            events = list(
                db.session.scalars(
                    select(ConsentEvent.event)
                    .where(
                        ConsentEvent.volunteer_id == volunteer.id,
                        ConsentEvent.campaign_id == campaign_id,
                    )
                    .order_by(ConsentEvent.id)
                )
            )
            if events:
                assert events[-1] == ConsentEventType.WITHDRAWN, (person, slug, events)

    def finish(self) -> None:
        """Process and send everything left, long after quiet hours; check what was sent."""
        self.step += 1
        self.now += timedelta(hours=6)
        self.sender.carrier_stopped.clear()
        for _ in range(3):
            self._process("batch", 0)
            self._send(quiet=False)
        self.check_state()
        for outcome in db.session.scalars(select(Call.outcome).distinct()):
            hypothesis.event(f"outcome {outcome}")  # --hypothesis-show-statistics
        hypothesis.event(f"withdrawals standing: {len(self.model.withdrawn())}")
        assert not db.session.scalar(
            select(func.count())
            .select_from(Call)
            .where(Call.state.in_([CallState.PENDING, CallState.QUEUED]))
        )
        for (person, slug), applied_at in self.model.withdrawn().items():
            after = [
                (kind, self.sent[message_id])
                for message_id, kind in db.session.execute(
                    select(Message.id, Message.kind).where(
                        Message.to_phone == person,
                        Message.campaign_id == self.campaigns[slug].id,
                        Message.kind != MessageKind.OPTOUT_CONFIRMATION,
                    )
                )
                if self.sent.get(message_id, -1) > applied_at
            ]
            assert not after, (person, slug, applied_at, after)
            waiting = db.session.scalar(
                select(func.count())
                .select_from(Message)
                .where(
                    Message.to_phone == person,
                    Message.campaign_id == self.campaigns[slug].id,
                    Message.status.in_([MessageStatus.PENDING, MessageStatus.QUEUED]),
                )
            )
            assert not waiting, (person, slug)


def _poisoned(joiners: list[bulk.Joiner]) -> dict[int, bulk.Joined]:
    raise RuntimeError("poison")


# --- every kind, named: the rules that could hold a withdrawal back, the paths, the sources ---

MOBILE = PEOPLE[0]
PATHS = ("one_call", "batch", "task_fallback")


def _apply(path: str, call_ids: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Process these calls the way `path` does: process_call, a batch, or the task's fallback."""
    if path == "one_call":
        for call_id in calls.in_processing_order(call_ids):
            calls.process_call(call_id)
    elif path == "batch":
        batch.process_batch(call_ids)
    else:
        with monkeypatch.context() as patch:
            patch.setattr(bulk, "join_callers", _poisoned)
            patch.setattr("signup.calls.tasks.publish_all", lambda task, chunks: len(chunks))
            db.session.commit()
            process_calls.run(call_ids)
    db.session.flush()


def _record(to: str, at: datetime, person: str = MOBILE) -> int:
    sid = f"CA{at.timestamp():.0f}{to[-4:]}{len(person)}{next(_sids):08d}"
    calls.record_inbound(InboundCall("twilio", sid, person, to), received_at=at)
    db.session.flush()
    return int(db.session.scalar(select(Call.id).where(Call.provider_call_id == sid)) or 0)


_sids = itertools.count()


def _subscription_status(person: str = MOBILE) -> str | None:
    db.session.expire_all()
    return db.session.scalar(
        select(Subscription.status)
        .join(Volunteer, Volunteer.id == Subscription.volunteer_id)
        .where(Volunteer.phone == person)
    )


def _last_event(person: str = MOBILE) -> str | None:
    return db.session.scalar(
        select(ConsentEvent.event)
        .join(Volunteer, Volunteer.id == ConsentEvent.volunteer_id)
        .where(Volunteer.phone == person)
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )


@pytest.fixture
def at_ten(app: Flask) -> Iterator[None]:
    """The clock at 10:00 in Kolkata; quiet hours and flood limit restored afterwards."""
    clock.set_clock(lambda: START)
    yield
    clock.set_clock(None)
    app.config["SMS_QUIET_HOURS"] = "off"
    app.config["FLOOD_CALLS_PER_HOUR"] = 10


@pytest.mark.usefixtures("at_ten")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("rule", ["flood", "quiet_hours", "blackout", "dlt_unregistered"])
def test_no_rule_holds_back_a_call_to_the_opt_out_number(
    app: Flask, monkeypatch: pytest.MonkeyPatch, rule: str, path: str
) -> None:
    jan = campaign()
    joined = [_record(NUMBER, START - timedelta(minutes=30))]
    if rule == "flood":  # finding 10: more calls in an hour than FLOOD_CALLS_PER_HOUR
        app.config["FLOOD_CALLS_PER_HOUR"] = 3
        joined += [_record(NUMBER, START - timedelta(minutes=20 - n)) for n in range(10)]
    elif rule == "quiet_hours":
        app.config["SMS_QUIET_HOURS"] = QUIET
    elif rule == "blackout":
        campaigns.add_blackout(jan, starts_at=START, ends_at=START + timedelta(days=2))
    else:  # a DLT principal but no template: such SMS are refused; the withdrawal is not
        campaigns.set_dlt(jan, entity_id="1201160000000000001", header="JANSVA")
    _apply(path, joined, monkeypatch)
    assert _subscription_status() == VolunteerStatus.ACTIVE
    optout = _record(OPTOUT, START)
    _apply(path, [optout], monkeypatch)
    assert _subscription_status() == VolunteerStatus.OPTED_OUT
    assert _last_event() == ConsentEventType.WITHDRAWN
    assert db.session.get(Call, optout).outcome == CallOutcome.OPTED_OUT  # type: ignore[union-attr]
    confirmation = db.session.scalar(
        select(Message).where(Message.kind == MessageKind.OPTOUT_CONFIRMATION)
    )
    assert confirmation is not None  # it alone may wait for the window to end
    if rule == "flood":
        assert confirmation.status == MessageStatus.QUEUED


@pytest.mark.usefixtures("at_ten")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dialled", ["08047259726", "+91 80 4725 9726", "918047259726"])
def test_the_opt_out_number_dialled_in_any_format_withdraws(
    monkeypatch: pytest.MonkeyPatch, dialled: str, path: str
) -> None:
    campaign()
    _apply(path, [_record(NUMBER, START - timedelta(hours=1))], monkeypatch)
    _apply(path, [_record(dialled, START)], monkeypatch)
    assert _subscription_status() == VolunteerStatus.OPTED_OUT


@pytest.mark.usefixtures("at_ten")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("first", ["join", "optout"])
def test_calls_in_the_same_second_apply_in_call_id_order(
    monkeypatch: pytest.MonkeyPatch, first: str, path: str
) -> None:
    """Same received_at: the call recorded first is the earlier one, in every path."""
    campaign()
    _apply(path, [_record(NUMBER, START - timedelta(hours=1))], monkeypatch)
    numbers = [NUMBER, OPTOUT] if first == "join" else [OPTOUT, NUMBER]
    ids = [_record(number, START) for number in numbers]
    _apply(path, ids, monkeypatch)
    expected = VolunteerStatus.OPTED_OUT if first == "join" else VolunteerStatus.ACTIVE
    assert _subscription_status() == expected


@pytest.mark.usefixtures("at_ten")
@pytest.mark.parametrize("path", PATHS)
def test_a_persons_calls_apply_in_the_order_they_were_made(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A join replayed from the spool gets a later id than the opt-out call made after it."""
    campaign()
    _apply(path, [_record(NUMBER, START - timedelta(hours=2))], monkeypatch)
    optout = _record(OPTOUT, START)
    replayed_join = _record(NUMBER, START - timedelta(seconds=30))
    assert replayed_join > optout
    _apply(path, [optout, replayed_join], monkeypatch)
    assert _subscription_status() == VolunteerStatus.OPTED_OUT
    assert _last_event() == ConsentEventType.WITHDRAWN


def _withdraw(source: str) -> None:
    """The person withdraws now, through `source`."""
    volunteer = db.session.scalar(select(Volunteer).where(Volunteer.phone == MOBILE))
    jan = db.session.scalar(select(Campaign))
    assert jan is not None
    if source == "opt_out_call":
        calls.process_call(_record(OPTOUT, START))
    elif source == "stop_reply":
        keywords.handle_reply(keywords.Reply("twilio", "SM1", MOBILE, "stop"))
    elif source == "provider":
        message = db.session.scalar(select(Message).where(Message.kind == MessageKind.ONBOARDING))
        assert message is not None
        vservices.withdraw_unsubscribed(message)
    elif source == "organiser":
        assert volunteer is not None
        evidence = vservices.Evidence(ConsentChannel.ORGANISER)
        vservices.opt_out(volunteer, jan, vservices.normalise(MOBILE), evidence)
    else:
        assert volunteer is not None
        erasure.erase_volunteer(volunteer, "test")
    db.session.flush()


SOURCES = ("opt_out_call", "stop_reply", "provider", "organiser", "erasure")


@pytest.mark.usefixtures("at_ten")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("source", SOURCES)
def test_a_join_made_before_an_applied_withdrawal_never_undoes_it(
    monkeypatch: pytest.MonkeyPatch, source: str, path: str
) -> None:
    """A join left behind (its batch failed, or replayed from the spool) comes after a withdrawal
    the person made later: it is superseded, whatever carried the withdrawal."""
    campaign()
    calls.process_call(_record(NUMBER, START - timedelta(hours=1)))
    made = START - timedelta(seconds=10)
    if source == "erasure":  # erasure blanks the calls on record; this one comes from the spool
        _withdraw(source)
        stale = _record(NUMBER, made)
    else:
        stale = _record(NUMBER, made)  # left pending: its batch failed
        _withdraw(source)
    before = _counts()
    _apply(path, [stale], monkeypatch)
    assert db.session.get(Call, stale).outcome == CallOutcome.SUPERSEDED  # type: ignore[union-attr]
    assert _counts() == before
    assert _subscription_status() in (None, VolunteerStatus.OPTED_OUT)


@pytest.mark.usefixtures("at_ten")
@pytest.mark.parametrize("path", PATHS)
def test_a_stranger_who_left_before_their_join_was_processed_is_never_added(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    campaign()
    stale = _record(NUMBER, START - timedelta(seconds=10))
    calls.process_call(_record(OPTOUT, START))  # not a volunteer yet: nothing to withdraw
    _apply(path, [stale], monkeypatch)
    assert db.session.scalar(select(func.count()).select_from(Volunteer)) == 0


def _counts() -> tuple[int, ...]:
    return tuple(
        int(db.session.scalar(select(func.count()).select_from(model)) or 0)
        for model in (Volunteer, Subscription, ConsentEvent, Message)
    )


@pytest.mark.usefixtures("at_ten")
@pytest.mark.parametrize("waiting_for", ["quiet_hours", "retry", "worker"])
@pytest.mark.parametrize("source", SOURCES[:4])
@pytest.mark.parametrize("kind", [MessageKind.ONBOARDING, MessageKind.HELP])
def test_a_withdrawal_stops_every_message_already_waiting(
    app: Flask, world: Sender, source: str, kind: MessageKind, waiting_for: str
) -> None:
    """Created before the withdrawal and waiting (for quiet hours to end, a retry after a
    transient failure, or a worker to take its task): never sent; the confirmation is."""
    if waiting_for == "quiet_hours":
        app.config["SMS_QUIET_HOURS"] = QUIET
    campaign()
    calls.process_call(_record(NUMBER, START - timedelta(minutes=5)))
    if kind is MessageKind.HELP:
        keywords.handle_reply(keywords.Reply("twilio", "SM0", MOBILE, "help"))
    waiting = db.session.scalar(select(Message).where(Message.kind == kind))
    assert waiting is not None
    if waiting_for == "retry":  # as _record leaves a transient failure
        waiting.status, waiting.attempts = MessageStatus.PENDING, 1
        waiting.next_attempt_at = START + timedelta(seconds=30)
    expected = MessageStatus.QUEUED if waiting_for == "worker" else MessageStatus.PENDING
    assert waiting.status == expected
    _withdraw(source)
    clock.set_clock(lambda: START + timedelta(hours=3))
    app.config["SMS_QUIET_HOURS"] = "off"
    for message in db.session.scalars(select(Message)).all():
        send_message.run(message.id)
    db.session.expire_all()
    assert waiting.status == MessageStatus.FAILED
    assert waiting.error_message == msgservices.WITHDRAWN_ERROR
    statuses = {m.kind: m.status for m in db.session.scalars(select(Message))}
    if source == "opt_out_call":
        assert statuses[MessageKind.OPTOUT_CONFIRMATION] == MessageStatus.SENT
    assert all(s == MessageStatus.FAILED for k, s in statuses.items() if k != "optout_confirmation")


@pytest.mark.usefixtures("at_ten")
def test_a_call_to_the_opt_out_number_is_never_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """However often it fails, a withdrawal stays pending (and applies once it can); a join
    that keeps failing becomes `failed` after MAX_PROCESS_ATTEMPTS."""
    campaign()
    calls.process_call(_record(NUMBER, START - timedelta(hours=1)))
    optout = _record(OPTOUT, START)
    join = _record(NUMBER, START, person=PEOPLE[1])
    for _ in range(calls.MAX_PROCESS_ATTEMPTS + 2):
        for call_id in (optout, join):
            calls.record_failure(call_id, RuntimeError("poison"))
    db.session.expire_all()
    assert db.session.get(Call, join).state == CallState.FAILED  # type: ignore[union-attr]
    assert db.session.get(Call, optout).state == CallState.PENDING  # type: ignore[union-attr]
    _apply("batch", [optout, join], monkeypatch)
    assert _subscription_status() == VolunteerStatus.OPTED_OUT


@pytest.mark.usefixtures("at_ten")
@pytest.mark.parametrize(
    "source",
    ["stop_reply", "provider_stop", *(f"opt_out_call-{path}" for path in PATHS)],
)
def test_an_imported_person_who_asks_to_leave_is_opted_out(
    monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """On an organiser's list, never joined: a withdrawal still marks them opted out, no SMS."""
    campaign()
    db.session.add(Volunteer(phone=MOBILE, status=VolunteerStatus.IMPORTED, call_count=0))
    db.session.flush()
    if source == "stop_reply":
        keywords.handle_reply(keywords.Reply("twilio", "SM1", MOBILE, "STOP"))
    elif source == "provider_stop":
        reply = keywords.Reply("twilio", "SM1", MOBILE, "ARRET", provider_keyword="STOP")
        keywords.handle_reply(reply)
    else:
        _apply(source.split("-")[1], [_record(OPTOUT, START)], monkeypatch)
    db.session.expire_all()
    volunteer = db.session.scalar(select(Volunteer).where(Volunteer.phone == MOBILE))
    assert volunteer is not None and volunteer.status == VolunteerStatus.OPTED_OUT
    assert volunteer.opted_out_at is not None
    assert not db.session.scalar(select(func.count()).select_from(Message))
    assert _last_event() == ConsentEventType.WITHDRAWN  # every withdrawal is in the ledger


def _rejoin(source: str) -> None:
    """The person joins again now, through `source`."""
    if source == "missed_call":
        calls.process_call(_record(NUMBER, START + timedelta(minutes=1)))
    else:
        provider_keyword = "START" if source == "provider_start" else None
        reply = keywords.Reply("twilio", "SM2", MOBILE, "START", provider_keyword=provider_keyword)
        keywords.handle_reply(reply)
    db.session.flush()


def _send_everything_at(app: Flask, at: datetime) -> dict[str, list[tuple[int, str]]]:
    """Send every message as the relay would at `at`; (round, status) of each, by kind."""
    clock.set_clock(lambda: at)
    app.config["SMS_QUIET_HOURS"] = "off"
    for message in db.session.scalars(select(Message).order_by(Message.id)).all():
        send_message.run(message.id)
    db.session.expire_all()
    found: dict[str, list[tuple[int, str]]] = {}
    for message in db.session.scalars(select(Message).order_by(Message.round)):
        found.setdefault(message.kind, []).append((message.round, message.status))
    return found


@pytest.mark.usefixtures("at_ten")
@pytest.mark.parametrize("hold", ["quiet_hours", "blackout"])
@pytest.mark.parametrize("source", ["missed_call", "start_reply", "provider_start"])
def test_a_confirmation_superseded_by_a_rejoin_is_never_sent(
    app: Flask, world: Sender, source: str, hold: str
) -> None:
    """Joined, left while SMS were held, joined again: when the hold ends, the welcome goes and
    the stale "you have left" does not (as a withdrawal drops a waiting welcome)."""
    jan = campaign()
    calls.process_call(_record(NUMBER, START - timedelta(hours=1)))
    _send_everything_at(app, START - timedelta(minutes=50))  # the first welcome goes
    if hold == "quiet_hours":
        app.config["SMS_QUIET_HOURS"] = QUIET
    else:
        campaigns.add_blackout(jan, starts_at=START, ends_at=START + timedelta(hours=1))
    calls.process_call(_record(OPTOUT, START))
    _rejoin(source)
    sent = _send_everything_at(app, START + timedelta(hours=3))
    assert sent[MessageKind.OPTOUT_CONFIRMATION] == [(1, MessageStatus.FAILED)]
    assert (MessageStatus.SENT) in {status for _, status in sent[MessageKind.ONBOARDING]}
    assert _subscription_status() == VolunteerStatus.ACTIVE


@pytest.mark.usefixtures("at_ten")
def test_only_the_current_withdrawals_confirmation_is_sent(app: Flask, world: Sender) -> None:
    """Left, joined, left again while SMS were held: one "you have left", the current one."""
    app.config["SMS_QUIET_HOURS"] = QUIET
    campaign()
    calls.process_call(_record(NUMBER, START - timedelta(hours=1)))
    calls.process_call(_record(OPTOUT, START))
    calls.process_call(_record(NUMBER, START + timedelta(minutes=1)))
    calls.process_call(_record(OPTOUT, START + timedelta(minutes=2)))
    sent = _send_everything_at(app, START + timedelta(hours=3))
    assert sent[MessageKind.OPTOUT_CONFIRMATION] == [
        (1, MessageStatus.FAILED),
        (2, MessageStatus.SENT),
    ]


@pytest.mark.usefixtures("at_ten")
@pytest.mark.parametrize("path", PATHS)
def test_an_erased_persons_stop_supersedes_their_waiting_join(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Erased, then a call still waiting, then STOP (kept without the number): the STOP is the
    later withdrawal, so that call never re-adds them."""
    campaign()
    calls.process_call(_record(NUMBER, START - timedelta(hours=1)))
    _withdraw("erasure")  # at START
    stale = _record(NUMBER, START + timedelta(seconds=5))  # called again: left pending
    clock.set_clock(lambda: START + timedelta(seconds=10))
    keywords.handle_reply(keywords.Reply("twilio", "SM9", MOBILE, "STOP"))
    _apply(path, [stale], monkeypatch)
    assert db.session.get(Call, stale).outcome == CallOutcome.SUPERSEDED  # type: ignore[union-attr]
    assert _subscription_status() is None
