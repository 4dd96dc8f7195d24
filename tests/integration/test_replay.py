"""A captured, correctly signed request replayed later, byte for byte, changes nothing.

The plain replay (the same call twice before processing) is covered in test_voice_webhook.py
and test_messaging.py; these replay requests after the state they caused has moved on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from signup.calls import services as calls
from signup.calls.models import Call
from signup.extensions import db
from signup.messaging.models import Message, MessageStatus
from signup.volunteers.models import ConsentEvent, Volunteer
from tests.helpers import ACCOUNT_SID, call_params, sign
from tests.integration.factories import NUMBER, OPTOUT, campaign

MOBILE = "+919911278181"
VOICE = "/webhooks/twilio/voice"
pytestmark = pytest.mark.usefixtures("db_session")


@dataclass(frozen=True)
class Captured:
    """A request as it crossed the wire: path, form fields and Twilio's signature."""

    path: str
    form: dict[str, str]
    signature: str

    def send(self, client: FlaskClient) -> int:
        """Post it again, exactly as captured; the HTTP status."""
        response = client.post(
            self.path, data=self.form, headers={"X-Twilio-Signature": self.signature}
        )
        return response.status_code


def capture(path: str, form: dict[str, str]) -> Captured:
    """A signed request, kept for replaying."""
    return Captured(path, form, sign(path, form))


def process_all() -> None:
    """Process every call not yet processed, as the worker would."""
    for call_id in db.session.scalars(select(Call.id).order_by(Call.id)):
        calls.process_call(call_id)
    db.session.flush()


def count(model: Any, *where: Any) -> int:
    """Rows of `model` matching `where`."""
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def volunteer() -> Volunteer:
    """The one volunteer, read afresh."""
    db.session.expire_all()
    return db.session.scalars(select(Volunteer)).one()


def test_a_replayed_join_call_never_rejoins_someone_who_left(client: FlaskClient) -> None:
    campaign()
    join = capture(VOICE, call_params("CA" + "1" * 32, MOBILE, NUMBER))
    assert join.send(client) == 200
    process_all()
    leave = capture(VOICE, call_params("CA" + "2" * 32, MOBILE, OPTOUT))
    assert leave.send(client) == 200
    process_all()
    assert volunteer().status == "opted_out"
    before = (count(Call), count(Message), count(ConsentEvent))

    assert join.send(client) == 200  # the captured join, replayed after they left
    assert leave.send(client) == 200  # and the captured leave, replayed once more
    process_all()
    person = volunteer()
    assert (person.status, person.call_count) == ("opted_out", 2)
    assert (count(Call), count(Message), count(ConsentEvent)) == before
    kinds = sorted(db.session.scalars(select(Message.kind)))
    assert kinds == ["onboarding", "optout_confirmation"]  # one of each, never a second


def test_a_replayed_stop_reply_after_rejoining_does_not_withdraw_again(
    client: FlaskClient,
) -> None:
    campaign()
    assert capture(VOICE, call_params("CA" + "3" * 32, MOBILE, NUMBER)).send(client) == 200
    process_all()
    stop = capture(
        "/webhooks/twilio/sms",
        {"MessageSid": "SM" + "3" * 32, "From": MOBILE, "To": "+15005550006", "Body": "STOP"},
    )
    assert stop.send(client) == 200
    assert volunteer().status == "opted_out"
    assert capture(VOICE, call_params("CA" + "4" * 32, MOBILE, NUMBER)).send(client) == 200
    process_all()
    assert volunteer().status == "active"  # a new missed call re-joins
    events = count(ConsentEvent)

    assert stop.send(client) == 200  # the old STOP, replayed
    assert volunteer().status == "active"
    assert count(ConsentEvent) == events


def sent_onboarding(client: FlaskClient) -> Message:
    """A volunteer's onboarding SMS, as the sender leaves it once Twilio accepted it."""
    campaign()
    assert capture(VOICE, call_params("CA" + "5" * 32, MOBILE, NUMBER)).send(client) == 200
    process_all()
    message = db.session.scalars(select(Message)).one()
    message.status = MessageStatus.SENT
    message.provider, message.provider_message_id = "twilio", "SM" + "5" * 32
    db.session.flush()
    return message


def test_a_replayed_delivery_report_never_moves_a_message_back(client: FlaskClient) -> None:
    message = sent_onboarding(client)
    report = {"AccountSid": ACCOUNT_SID, "MessageSid": message.provider_message_id or ""}
    sent = capture("/webhooks/twilio/message-status", {**report, "MessageStatus": "sent"})
    delivered = capture("/webhooks/twilio/message-status", {**report, "MessageStatus": "delivered"})
    assert (sent.send(client), delivered.send(client)) == (204, 204)
    assert (sent.send(client), delivered.send(client), sent.send(client)) == (204, 204, 204)
    db.session.refresh(message)
    assert message.status == MessageStatus.DELIVERED


def test_a_replayed_unreachable_report_keeps_the_one_resend(client: FlaskClient) -> None:
    message = sent_onboarding(client)
    unreachable = capture(
        "/webhooks/twilio/message-status",
        {
            "AccountSid": ACCOUNT_SID,
            "MessageSid": message.provider_message_id or "",
            "MessageStatus": "undelivered",
            "ErrorCode": "30003",
        },
    )
    assert unreachable.send(client) == 204
    db.session.refresh(message)
    assert (message.status, message.resends) == (MessageStatus.PENDING, 1)
    assert unreachable.send(client) == 204  # Twilio retries a callback; or a replay
    db.session.refresh(message)
    assert (message.status, message.resends) == (MessageStatus.PENDING, 1)
