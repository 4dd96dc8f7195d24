"""The missed-call webhooks: verify, record the call, answer with a rejection."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from signup.calls import services
from signup.calls.providers import PROVIDERS, CallProvider
from signup.extensions import db
from signup.logs import event
from signup.phones import mask, normalise

bp = Blueprint("calls", __name__)
log = logging.getLogger(__name__)


def _handle(provider: CallProvider) -> Response:
    inbound = provider.parse(request)  # never raises; read first so a refusal can be logged
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
        abort(403)
    try:
        created = services.record_inbound(inbound)
        db.session.commit()
    except SQLAlchemyError as exc:
        # An error answer makes the provider pick up and bill the caller: still reject.
        db.session.rollback()
        event(
            log,
            logging.ERROR,
            "call.record_failed",
            provider=provider.name,
            call_id=inbound.provider_call_id,
            error=type(exc).__name__,
        )
        return provider.answer()
    if created and current_app.config.get("RELAY_NUDGE"):
        current_app.extensions["relay_nudger"].nudge()
    return provider.answer()


@bp.post("/webhooks/twilio/voice")
def twilio_voice() -> Response:
    """Twilio's incoming-call webhook."""
    return _handle(PROVIDERS["twilio"])


@bp.get("/webhooks/exotel/<token>/call")
def exotel_call(token: str) -> Response:
    """Exotel's Passthru applet for a missed call (the token is checked by the provider)."""
    return _handle(PROVIDERS["exotel"])
