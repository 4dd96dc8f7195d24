"""Celery tasks that send messages from the outbox and keep it moving."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from signup.extensions import db
from signup.messaging import services
from signup.messaging.providers import SmsSender
from signup.tasking import publish_all
from signup.volunteers import services as volunteers


def sender() -> SmsSender:
    """The SMS sender built at app start from SMS_PROVIDER."""
    sms_sender: SmsSender = current_app.extensions["sms_sender"]
    return sms_sender


@shared_task(name="signup.messaging.tasks.send_message", ignore_result=True, acks_late=True)
def send_message(message_id: int) -> str | None:
    """Claim, commit, call the provider, record: a duplicate delivery finds nothing to claim.

    Runs on many threads at once (docs/deployment.md): the claim is committed inside deliver,
    just before the provider call, so each send takes two short transactions and no database
    connection is held while the provider answers.
    """
    session = db.session()
    session.expire_on_commit = False  # the claimed row is ours: no reloads after each commit
    message = services.claim_for_sending(message_id)
    if message is None:
        db.session.commit()
        return None
    outcome = services.deliver(message, sender(), current_app.extensions["sms_rate_limiter"])
    if outcome.opted_out:
        volunteers.withdraw_unsubscribed(message)
    db.session.commit()
    return str(outcome.status)


@shared_task(name="signup.messaging.tasks.relay_messages", ignore_result=True)
def relay_messages() -> int:
    """Publish messages that are due (new, retry time reached, or lost by the broker)."""
    ids = services.claim_due(current_app.config["RELAY_BATCH_SIZE"])
    db.session.commit()
    sent = publish_all(send_message, [(message_id,) for message_id in ids])
    if sent < len(ids):
        services.release(ids[sent:])
        db.session.commit()
    return len(ids)


@shared_task(name="signup.messaging.tasks.sweep_stale_messages", ignore_result=True)
def sweep_stale_messages() -> int:
    """Mark messages abandoned mid-send as unknown, for review."""
    count = services.mark_stale_sending_unknown()
    db.session.commit()
    return count
