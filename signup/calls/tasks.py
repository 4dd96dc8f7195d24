"""Celery tasks that drain the call outbox: relay claims calls, process_calls applies them."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from signup.calls import services
from signup.extensions import db
from signup.messaging.tasks import send_message
from signup.tasking import publish, publish_all

CHUNK = 50


@shared_task(name="signup.calls.tasks.relay_calls", ignore_result=True)
def relay_calls() -> int:
    """Claim unprocessed calls and publish them in chunks; put back what cannot be published."""
    ids = services.claim_unprocessed(current_app.config["RELAY_BATCH_SIZE"])
    db.session.commit()
    chunks = [(ids[start : start + CHUNK],) for start in range(0, len(ids), CHUNK)]
    sent = publish_all(process_calls, chunks)
    if sent < len(chunks):
        services.release([i for (chunk,) in chunks[sent:] for i in chunk])
        db.session.commit()
    return len(ids)


@shared_task(name="signup.calls.tasks.process_calls", ignore_result=True, acks_late=True)
def process_calls(call_ids: list[int]) -> int:
    """Process each call in its own transaction and publish its SMS right after the commit."""
    for call_id in call_ids:
        try:
            result = services.process_call(call_id)
            db.session.commit()
        except Exception as exc:
            db.session.rollback()
            services.record_failure(call_id, exc)
            db.session.commit()
            continue
        for message_id in result.message_ids if result is not None else []:
            publish(send_message, message_id)  # if this fails, relay_messages picks it up
    return len(call_ids)


@shared_task(name="signup.calls.tasks.purge_raw_caller_strings", ignore_result=True)
def purge_raw_caller_strings() -> int:
    """Data retention: remove raw caller strings older than CALL_RAW_RETENTION_DAYS."""
    return services.purge_raw_strings(current_app.config["CALL_RAW_RETENTION_DAYS"])


@shared_task(name="signup.calls.tasks.replay_spool", ignore_result=True)
def replay_spool() -> int:
    """Record calls that web processes kept in Redis while the database was away."""
    spooled: int = current_app.extensions["call_spool"].replay_redis()
    return spooled
