"""Twilio's SMS webhooks: delivery status callbacks and inbound opt-out keywords."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, request

from signup.calls.providers.twilio import verify_twilio_request
from signup.extensions import db
from signup.logs import event
from signup.messaging import keywords, services

bp = Blueprint("messaging", __name__)
log = logging.getLogger(__name__)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def _require_twilio_signature() -> None:
    if not verify_twilio_request(request):
        event(
            log,
            logging.WARNING,
            "webhook.forbidden",
            provider="twilio",
            remote=request.remote_addr,
            path=request.path,
        )
        abort(403)


@bp.post("/webhooks/twilio/message-status")
def twilio_message_status() -> Response:
    """Apply a delivery report; out-of-order reports never move a message backwards."""
    _require_twilio_signature()
    sid = request.form.get("MessageSid", "")[:64]
    status = request.form.get("MessageStatus", request.form.get("SmsStatus", ""))[:32]
    raw_code = request.form.get("ErrorCode", "")
    code = int(raw_code) if raw_code.isdigit() and len(raw_code) < 10 else None
    if sid and services.apply_status(sid, status, code):
        db.session.commit()
    return Response("", status=204)


@bp.post("/webhooks/twilio/sms")
def twilio_inbound_sms() -> Response:
    """Handle STOP-type and START-type replies; never answer with an SMS of our own."""
    _require_twilio_signature()
    keywords.handle_reply(
        from_raw=request.form.get("From", "")[:64],
        body=request.form.get("Body", "")[:1600],
    )
    db.session.commit()
    return Response(EMPTY_TWIML, status=200, mimetype="text/xml")
