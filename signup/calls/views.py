"""The missed-call webhooks through Flask: verify, record the call, answer with a rejection.

In a running app most of these requests never get here: signup.calls.fastpath answers the
genuine ones straight from WSGI with the same rules (signup.calls.webhooks). What reaches
these views is what the fast path hands on: refusals (403 for a bad signature or token, 400
for a verified request without a well-formed call id), odd bodies, and apps without it.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, abort, current_app, request

from signup.calls import webhooks
from signup.calls.providers import PROVIDERS, CallProvider

bp = Blueprint("calls", __name__)


def _handle(provider: CallProvider) -> Response:
    started = time.perf_counter()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not provider.verify(request, app.config):
        webhooks.refuse(provider, request, started)
        abort(403)
    inbound = provider.parse(request)
    if inbound is None:
        webhooks.refuse_malformed(provider, request, started)
        abort(400)
    webhooks.accept(provider, inbound, started, app)
    return provider.answer().response()


@bp.post("/webhooks/twilio/voice")
def twilio_voice() -> Response:
    """Twilio's incoming-call webhook."""
    return _handle(PROVIDERS["twilio"])


@bp.get("/webhooks/exotel/<token>/call")
def exotel_call(token: str) -> Response:
    """Exotel's Passthru applet for a missed call (the token is checked by the provider)."""
    return _handle(PROVIDERS["exotel"])
