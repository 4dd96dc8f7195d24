"""Celery tasks that drain the call outbox: relay claims calls, process_calls applies them."""

from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app

from signup.calls import batch, services
from signup.extensions import db
from signup.logs import event
from signup.messaging.tasks import chunks, send_messages
from signup.tasking import publish_all

log = logging.getLogger(__name__)


@shared_task(name="signup.calls.tasks.relay_calls", ignore_result=True)
def relay_calls() -> int:
    """Claim unprocessed calls and publish them in chunks; put back what cannot be published."""
    ids = services.claim_unprocessed(current_app.config["RELAY_BATCH_SIZE"])
    db.session.commit()
    size = max(1, int(current_app.config["PROCESS_BATCH_SIZE"]))
    chunks = [(ids[start : start + size],) for start in range(0, len(ids), size)]
    sent = publish_all(process_calls, chunks)
    if sent < len(chunks):
        services.release([i for (chunk,) in chunks[sent:] for i in chunk])
        db.session.commit()
    return len(ids)


@shared_task(name="signup.calls.tasks.process_calls", ignore_result=True, acks_late=True)
def process_calls(call_ids: list[int]) -> int:
    """Process the calls as one batch, or one by one if the batch fails; publish SMS after."""
    try:
        message_ids = batch.process_batch(call_ids).message_ids
        db.session.commit()
    except Exception as exc:  # a poison call, a deadlock: fall back so the rest still go through
        db.session.rollback()
        event(
            log, logging.WARNING, "call.batch_failed", calls=len(call_ids), error=type(exc).__name__
        )
        message_ids = _one_by_one(call_ids)
    services.log_outcomes(call_ids)
    publish_all(send_messages, chunks(message_ids))  # what fails, relay_messages picks up
    return len(call_ids)


def _one_by_one(call_ids: list[int]) -> list[int]:
    """Process each call in its own transaction, in the batch's order; a failure is counted."""
    message_ids: list[int] = []
    for call_id in services.in_processing_order(call_ids):
        try:
            result = services.process_call(call_id)
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            services.record_failure(call_id, exc)
            db.session.commit()
            continue
        if result is not None:
            message_ids.extend(result.message_ids)
    return message_ids


@shared_task(name="signup.calls.tasks.purge_raw_caller_strings", ignore_result=True)
def purge_raw_caller_strings() -> int:
    """Data retention: remove raw caller strings older than CALL_RAW_RETENTION_DAYS."""
    return services.purge_raw_strings(current_app.config["CALL_RAW_RETENTION_DAYS"])


@shared_task(name="signup.calls.tasks.replay_spool", ignore_result=True)
def replay_spool() -> int:
    """Record calls that web processes kept in Redis while the database was away."""
    spooled: int = current_app.extensions["call_spool"].replay_redis()
    return spooled
