"""Withdrawal always wins between concurrent transactions: one person's consent changes queue.

A join processed by one worker while another commits the same person's later withdrawal (a
call to the opt-out number, a STOP reply, a 21610, an admin) must not slip past it: every path
takes the person's lock first (volunteers.services.lock_people), so the join sees the withdrawal
and is superseded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from signup.admin import services as admin_services
from signup.admin.access import Access
from signup.calls import batch
from signup.calls import services as calls
from signup.extensions import db
from signup.messaging import keywords
from signup.messaging.models import Message
from signup.users import services as users
from signup.users.models import Role
from signup.volunteers import services as volunteers
from signup.volunteers.models import Subscription, Volunteer, VolunteerStatus
from tests.integration.factories import OPTOUT, campaign, inbound

MOBILE = "+919911200001"


@pytest.fixture
def clean(committed: Flask) -> Iterator[Flask]:
    """Committed data, every table emptied afterwards (inbound messages too)."""
    yield committed
    db.session.remove()
    tables = ", ".join(t.name for t in db.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def _in_thread(app: Flask, work: Callable[[], None], hold: threading.Event | None = None) -> Any:
    """Run `work` in its own transaction on a thread; commit once `hold` is set (if given)."""
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        with app.app_context():
            try:
                work()
                done.set()
                if hold is not None:
                    hold.wait(10)
                db.session.commit()
            except BaseException as exc:  # surfaced by the test
                errors.append(exc)
                done.set()
            finally:
                db.session.remove()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done, errors


@pytest.mark.parametrize("join_path", ["batch", "one_call"])
@pytest.mark.parametrize("withdrawal", ["opt_out_call", "stop_reply", "provider", "organiser"])
def test_a_withdrawal_committed_while_an_older_join_is_processed_wins(
    clean: Flask, withdrawal: str, join_path: str
) -> None:
    campaign()
    if withdrawal in ("provider", "organiser"):  # they joined earlier
        calls.process_call(inbound(MOBILE).id)
    admin = users.create_user(email="admin@x.org", role="admin", password="correct horse battery")
    join_id = inbound(MOBILE).id  # made next; its batch runs late, beside the withdrawal
    optout_id = inbound(MOBILE, OPTOUT).id
    db.session.commit()

    def withdraw() -> None:
        if withdrawal == "opt_out_call":
            calls.process_call(optout_id)
        elif withdrawal == "stop_reply":
            keywords.handle_reply(keywords.Reply("twilio", "SM-race", MOBILE, "STOP"))
        elif withdrawal == "provider":  # Twilio answered a send with 21610
            message = db.session.scalar(select(Message))
            assert message is not None
            volunteers.withdraw_unsubscribed(message)
        else:  # an admin opts them out on their request
            volunteer_id = db.session.scalar(select(Volunteer.id))
            assert volunteer_id is not None
            admin_services.opt_out(volunteer_id, Access(admin.id, Role.ADMIN))

    def join() -> None:
        if join_path == "batch":
            batch.process_batch([join_id])
        else:
            calls.process_call(join_id)

    release = threading.Event()
    withdrawing, withdrawn, errors = _in_thread(clean, withdraw, hold=release)
    assert withdrawn.wait(10)
    joining, joined, join_errors = _in_thread(clean, join)
    joined.wait(0.5)  # with the lock it waits for the withdrawal's commit; without, it is done
    release.set()
    withdrawing.join(10)
    joining.join(10)
    assert not errors and not join_errors
    db.session.remove()
    active = db.session.scalar(
        select(func.count())
        .select_from(Subscription)
        .where(Subscription.status == VolunteerStatus.ACTIVE)
    )
    assert active == 0
