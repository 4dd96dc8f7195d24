"""The missed-call webhooks: verify, record the call, answer with a rejection."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from signup import clock
from signup.calls import metrics, services
from signup.calls.providers import PROVIDERS, CallProvider, InboundCall
from signup.calls.writer import CallNotRecordedError, CallWriter
from signup.extensions import db
from signup.logs import event
from signup.phones import mask, normalise

bp = Blueprint("calls", __name__)
log = logging.getLogger(__name__)


def _handle(provider: CallProvider) -> Response:
    started = time.perf_counter()
    inbound = provider.parse(request)  # never raises; read first so a refusal can be logged
    received_at = clock.now()
    if not provider.verify(request):
        event(
            log,
            logging.WARNING,
            "webhook.forbidden",
            provider=provider.name,
            remote=request.remote_addr,
            route=request.url_rule.rule if request.url_rule else None,  # never the token
            caller=mask(normalise(inbound.from_raw[:64]).e164),
        )
        metrics.observe(provider.name, "forbidden", time.perf_counter() - started)
        abort(403)
    try:
        created = _record(inbound, received_at)
    except (SQLAlchemyError, CallNotRecordedError) as exc:
        # An error answer makes the provider pick up and bill the caller: keep the call in the
        # spool and still reject.
        db.session.rollback()
        outcome = _spool(provider.name, inbound, received_at, exc)
        metrics.observe(provider.name, outcome, time.perf_counter() - started)
        return provider.answer()
    if created and current_app.config.get("RELAY_NUDGE"):
        current_app.extensions["relay_nudger"].nudge()
    outcome = "recorded" if created else "duplicate"
    metrics.observe(provider.name, outcome, time.perf_counter() - started)
    return provider.answer()


def _record(inbound: InboundCall, received_at: datetime) -> bool:
    """Commit the call before answering; True when it is new.

    With WEBHOOK_AUTOCOMMIT on PostgreSQL the process's CallWriter commits it together with
    the calls of concurrent requests (group commit). Otherwise it goes through the session,
    where a pooled connection found dead is replaced and the insert tried once more.
    """
    writer: CallWriter | None = current_app.extensions.get("call_writer")
    if writer is not None:
        return writer.record(services.call_row(inbound, received_at))
    for attempt in (1, 2):
        try:
            if current_app.config["WEBHOOK_AUTOCOMMIT"]:
                # One INSERT needs no BEGIN/COMMIT round trips; it is durable when it returns.
                db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            created = services.record_inbound(inbound, received_at)
            db.session.commit()
            return created
        except DBAPIError as exc:
            db.session.rollback()
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def _spool(provider: str, inbound: InboundCall, received_at: datetime, exc: Exception) -> str:
    """Keep a call the database did not take; returns the outcome, 'spooled' or 'lost'."""
    try:
        where = current_app.extensions["call_spool"].put(inbound, received_at)
    except OSError as spool_error:
        event(
            log,
            logging.CRITICAL,
            "call.lost",
            provider=provider,
            call_id=inbound.provider_call_id,
            error=type(exc).__name__,
            spool_error=type(spool_error).__name__,
        )
        return "lost"
    if where == "file":
        current_app.extensions["spool_replayer"].wake()
    event(
        log,
        logging.ERROR,
        "call.spooled",
        provider=provider,
        call_id=inbound.provider_call_id,
        spool=where,
        error=type(exc).__name__,
    )
    return "spooled"


@bp.post("/webhooks/twilio/voice")
def twilio_voice() -> Response:
    """Twilio's incoming-call webhook."""
    return _handle(PROVIDERS["twilio"])


@bp.get("/webhooks/exotel/<token>/call")
def exotel_call(token: str) -> Response:
    """Exotel's Passthru applet for a missed call (the token is checked by the provider)."""
    return _handle(PROVIDERS["exotel"])
