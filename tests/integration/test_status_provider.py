"""Delivery reports touch only messages the reporting provider sent (review finding 8)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from signup.calls import services as calls
from signup.extensions import db
from signup.messaging.models import Message, MessageStatus
from signup.messaging.providers import SENDERS
from tests.helpers import ACCOUNT_SID, post_signed
from tests.integration.factories import campaign, inbound

pytestmark = pytest.mark.usefixtures("db_session")
TOKEN = "exotel-webhook-secret-0123456789"
SID = "SM" + "ab" * 16  # a well-formed id for both providers' callbacks


def twilio_report(client: FlaskClient, sid: str) -> Any:
    params = {"MessageSid": sid, "MessageStatus": "failed", "AccountSid": ACCOUNT_SID}
    return post_signed(client, "/webhooks/twilio/message-status", params)


def exotel_report(client: FlaskClient, sid: str) -> Any:
    return client.post(
        f"/webhooks/exotel/{TOKEN}/sms-status", data={"SmsSid": sid, "Status": "failed"}
    )


# Every provider's delivery-report route: a new one must be added here.
REPORTS: dict[str, Callable[[FlaskClient, str], Any]] = {
    "twilio": twilio_report,
    "exotel": exotel_report,
}


@pytest.fixture(autouse=True)
def exotel_token(app: Flask) -> Iterator[None]:
    app.config.update(EXOTEL_WEBHOOK_TOKEN=TOKEN, EXOTEL_ALLOWED_NETWORKS=[])
    yield
    app.config.update(EXOTEL_WEBHOOK_TOKEN=None, EXOTEL_ALLOWED_NETWORKS=[])


def sent_message(provider: str) -> Message:
    """An onboarding message marked as sent by `provider` under the id SID."""
    campaign()
    result = calls.process_call(inbound("+919911278181").id)
    assert result is not None
    message = db.session.get(Message, result.message_ids[0])
    assert message is not None
    message.status, message.provider, message.provider_message_id = "sent", provider, SID
    db.session.flush()
    return message


def test_every_sms_provider_has_a_report_route_listed() -> None:
    assert set(REPORTS) == set(SENDERS) - {"console"}


@pytest.mark.parametrize(
    ("route", "sender"),
    [(route, sender) for route in REPORTS for sender in SENDERS if sender != route],
)
def test_a_report_never_changes_another_providers_message(
    client: FlaskClient, route: str, sender: str
) -> None:
    message = sent_message(sender)
    assert REPORTS[route](client, SID).status_code in (200, 204)
    db.session.refresh(message)
    assert message.status == MessageStatus.SENT


@pytest.mark.parametrize("route", list(REPORTS))
def test_a_report_changes_its_own_providers_message(client: FlaskClient, route: str) -> None:
    message = sent_message(route)
    assert REPORTS[route](client, SID).status_code in (200, 204)
    db.session.refresh(message)
    assert message.status == MessageStatus.FAILED
