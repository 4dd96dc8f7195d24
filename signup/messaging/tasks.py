"""Celery tasks that send messages from the outbox and keep it moving."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from celery import shared_task
from flask import current_app

from signup.extensions import db
from signup.messaging import services
from signup.messaging.models import Message
from signup.messaging.providers import SmsSender
from signup.messaging.services import DeliveryOutcome
from signup.tasking import publish_all
from signup.volunteers import services as volunteers


def sender() -> SmsSender:
    """The SMS sender built at app start from SMS_PROVIDER."""
    sms_sender: SmsSender = current_app.extensions["sms_sender"]
    return sms_sender


# Messages one send_messages task claims together (the relay publishes chunks this size).
SEND_BATCH = 50
# Sends in flight at once per process across all batch tasks (each mostly waits on the provider).
SEND_THREADS = 128

_executor: ThreadPoolExecutor | None = None
_executor_pid: int | None = None
_executor_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """This process's pool of sending threads, made on first use (after any fork)."""
    global _executor, _executor_pid
    if _executor is None or _executor_pid != os.getpid():
        with _executor_lock:
            if _executor is None or _executor_pid != os.getpid():
                _executor = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="sms-send")
                _executor_pid = os.getpid()
    return _executor


def _send(message_ids: list[int], pool: ThreadPoolExecutor | None) -> dict[int, DeliveryOutcome]:
    """Claim, commit, call the provider (concurrently with a pool), record, commit."""
    sms_sender = sender()
    claimed = services.claim_batch(message_ids, provider=sms_sender.name)
    if not claimed:
        db.session.commit()  # quiet-hours deferrals, if any
        return {}
    outcomes = services.send_claimed(
        claimed, sms_sender, current_app.extensions["sms_rate_limiter"], pool
    )
    for message_id, outcome in outcomes.items():
        if outcome.opted_out:
            message = db.session.get(Message, message_id)
            if message is not None:
                volunteers.withdraw_unsubscribed(message)
    db.session.commit()
    return outcomes


@shared_task(name="signup.messaging.tasks.send_message", ignore_result=True, acks_late=True)
def send_message(message_id: int) -> str | None:
    """Send one message: claim, commit, call the provider, record; a duplicate finds nothing.

    Runs on many threads at once (docs/deployment.md): each send takes two short transactions
    and holds no database connection while the provider answers.
    """
    outcome = _send([message_id], None).get(message_id)
    return str(outcome.status) if outcome is not None else None


@shared_task(name="signup.messaging.tasks.send_messages", ignore_result=True, acks_late=True)
def send_messages(message_ids: list[int]) -> int:
    """Send many messages: one claim, sends overlapping on this process's pool, one record.

    The same guarantees as send_message: the claim is committed before any provider call, a
    duplicate delivery finds nothing to claim, and each send takes its own rate-limit slot.
    Returns how many were claimed.
    """
    return len(_send([int(message_id) for message_id in message_ids], executor()))


def batch_size() -> int:
    """Messages per send_messages task: SEND_BATCH, but never more than a second of the rate,
    so that one batch never reserves rate-limit slots far ahead (those would be put back)."""
    rate = float(current_app.config.get("SMS_RATE_PER_SECOND") or SEND_BATCH)
    return max(1, min(SEND_BATCH, int(rate)))


def chunks(ids: list[int], size: int | None = None) -> list[tuple[list[int]]]:
    """send_messages argument tuples of at most `size` ids each (default: batch_size())."""
    size = size or batch_size()
    return [(ids[start : start + size],) for start in range(0, len(ids), size)]


@shared_task(name="signup.messaging.tasks.relay_messages", ignore_result=True)
def relay_messages() -> int:
    """Publish messages that are due (new, retry time reached, or lost by the broker) in chunks."""
    ids = services.claim_due(current_app.config["RELAY_BATCH_SIZE"])
    db.session.commit()
    batches = chunks(ids)
    published = publish_all(send_messages, batches)
    if published < len(batches):
        services.release([i for (batch,) in batches[published:] for i in batch])
        db.session.commit()
    return len(ids)


@shared_task(name="signup.messaging.tasks.sweep_stale_messages", ignore_result=True)
def sweep_stale_messages() -> int:
    """Mark messages abandoned mid-send as unknown, for review."""
    count = services.mark_stale_sending_unknown()
    db.session.commit()
    return count
