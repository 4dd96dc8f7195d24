"""The incoming-call webhook's rules, shared by the Flask view and the WSGI fast path.

A verified call is committed before it is answered; when the database cannot take it, it is
spooled and still rejected, because an error answer makes the provider pick up and bill the
caller. Every webhook is counted by outcome and timed for /metrics.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from flask import Flask, Request
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from signup import clock
from signup.calls import metrics, services
from signup.calls.providers import CallProvider, InboundCall
from signup.calls.writer import CallNotRecordedError, CallWriter
from signup.extensions import db
from signup.logs import event
from signup.phones import mask, normalise

log = logging.getLogger(__name__)


def accept(provider: CallProvider, inbound: InboundCall, started: float, app: Flask) -> str:
    """Record a verified webhook's call (or spool it); returns the outcome for the metrics.

    `started` is the perf_counter() reading when the request arrived. Needs an app context
    only when the app has no CallWriter (the session records the call then).
    """
    received_at = clock.now()
    try:
        created = _record(app, inbound, received_at)
    except (SQLAlchemyError, CallNotRecordedError) as exc:
        if app.extensions.get("call_writer") is None:
            db.session.rollback()
        outcome = _spool(app, provider.name, inbound, received_at, exc)
    else:
        if created and app.config.get("RELAY_NUDGE"):
            app.extensions["relay_nudger"].nudge()
        outcome = "recorded" if created else "duplicate"
    metrics.observe(provider.name, outcome, time.perf_counter() - started)
    return outcome


def refuse(provider: CallProvider, request: Request, started: float) -> None:
    """Log and count a webhook whose signature or token did not match (never the secret)."""
    inbound = provider.parse(request)
    caller = mask(normalise(inbound.from_raw[:64]).e164) if inbound else None
    _refused("forbidden", provider, request, started, caller=caller)


def refuse_malformed(provider: CallProvider, request: Request, started: float) -> None:
    """Log and count a verified webhook without a well-formed call id: nothing is stored."""
    _refused("malformed", provider, request, started)


def _refused(
    outcome: str, provider: CallProvider, request: Request, started: float, **fields: Any
) -> None:
    event(
        log,
        logging.WARNING,
        f"webhook.{outcome}",
        provider=provider.name,
        remote=request.remote_addr,
        route=request.url_rule.rule if request.url_rule else request.path,
        **fields,
    )
    metrics.observe(provider.name, outcome, time.perf_counter() - started)


def _record(app: Flask, inbound: InboundCall, received_at: datetime) -> bool:
    """Commit the call before answering; True when it is new.

    With WEBHOOK_AUTOCOMMIT on PostgreSQL the process's CallWriter commits it together with
    the calls of concurrent requests (group commit). Otherwise it goes through the session,
    where a pooled connection found dead is replaced and the insert tried once more.
    """
    writer: CallWriter | None = app.extensions.get("call_writer")
    if writer is not None:
        return writer.record(services.call_row(inbound, received_at))
    for attempt in (1, 2):
        try:
            if app.config["WEBHOOK_AUTOCOMMIT"]:
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


def _spool(
    app: Flask, provider: str, inbound: InboundCall, received_at: datetime, exc: Exception
) -> str:
    """Keep a call the database did not take; returns the outcome, 'spooled' or 'lost'."""
    try:
        where = app.extensions["call_spool"].put(inbound, received_at)
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
        app.extensions["spool_replayer"].wake()
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
