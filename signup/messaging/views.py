"""SMS webhooks: delivery reports and inbound keywords, from Twilio (signed) and Exotel."""

from __future__ import annotations

import logging
import re
from typing import NoReturn

from flask import Blueprint, Request, Response, abort, request

from signup.calls.providers.base import single_id
from signup.calls.providers.exotel import EXOTEL_SID, unquote, verify_exotel_request
from signup.calls.providers.twilio import MESSAGE_SID, verify_twilio_request
from signup.extensions import db
from signup.logs import event
from signup.messaging import keywords, services
from signup.messaging.models import MessageStatus
from signup.messaging.providers.exotel import exotel_status
from signup.messaging.tasks import send_message
from signup.tasking import publish

bp = Blueprint("messaging", __name__)
log = logging.getLogger(__name__)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def _refuse(status: int, name: str, provider: str) -> NoReturn:
    """Log a refused webhook (never its secret or body) and answer `status`."""
    event(
        log,
        logging.WARNING,
        name,
        provider=provider,
        remote=request.remote_addr,
        route=request.url_rule.rule if request.url_rule else None,
    )
    abort(status)


def _require(verified: bool, provider: str) -> None:
    if not verified:
        _refuse(403, "webhook.forbidden", provider)


def _message_id(values: list[str], pattern: re.Pattern[str], provider: str) -> str:
    """The request's message id; a verified request without a well-formed one is a 400.

    Replies and reports are applied once per provider message id; one without an id (a
    re-split signed body, see single_id) must not become a new event, so nothing is stored.
    """
    message_id = single_id(values, pattern)
    if message_id is None:
        _refuse(400, "webhook.malformed", provider)
    return message_id


def _int(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def _reply(reply: keywords.Reply) -> None:
    """Apply a keyword reply, commit, then publish what it queued."""
    to_send = keywords.handle_reply(reply)
    db.session.commit()
    for message_id in to_send:
        publish(send_message, message_id)


@bp.post("/webhooks/twilio/message-status")
def twilio_message_status() -> Response:
    """Apply a Twilio delivery report; out-of-order reports never move a message backwards."""
    _require(verify_twilio_request(request), "twilio")
    sid = _message_id(request.form.getlist("MessageSid"), MESSAGE_SID, "twilio")
    raw = request.form.get("MessageStatus", request.form.get("SmsStatus", ""))[:32]
    try:
        status = MessageStatus(raw)
    except ValueError:
        return Response("", status=204)
    if services.apply_status("twilio", sid, status, _int(request.form.get("ErrorCode"))):
        db.session.commit()
    return Response("", status=204)


@bp.post("/webhooks/twilio/sms")
def twilio_inbound_sms() -> Response:
    """Handle keyword replies; never answer in TwiML (replies, if any, go through the outbox)."""
    _require(verify_twilio_request(request), "twilio")
    form = request.form
    _reply(
        keywords.Reply(
            provider="twilio",
            provider_message_id=_message_id(form.getlist("MessageSid"), MESSAGE_SID, "twilio"),
            from_raw=form.get("From", "")[:64],
            body=form.get("Body", "")[:1600],
            provider_keyword=form.get("OptOutType", "")[:16] or None,
        )
    )
    return Response(EMPTY_TWIML, status=200, mimetype="text/xml")


@bp.post("/webhooks/exotel/<token>/sms-status")
def exotel_sms_status(token: str) -> Response:
    """Apply an Exotel delivery report (the token in the path is the only proof of origin)."""
    _require(verify_exotel_request(request), "exotel")
    sid = _message_id(request.values.getlist("SmsSid"), EXOTEL_SID, "exotel")
    status, dnd = exotel_status(request.values.get("Status", ""))
    code = _int(request.values.get("DetailedStatusCode"))
    if status is not None and services.apply_status("exotel", sid, status, code, dnd=dnd):
        db.session.commit()
    return Response("", status=200, mimetype="text/plain")


def _exotel_reply(req: Request) -> keywords.Reply:
    values = req.values
    return keywords.Reply(
        provider="exotel",
        provider_message_id=_message_id(
            [unquote(v) for v in values.getlist("SmsSid") or values.getlist("CallSid")],
            EXOTEL_SID,
            "exotel",
        ),
        from_raw=values.get("From", values.get("CallFrom", "")).strip('"')[:64],
        body=values.get("Body", values.get("body", "")).strip('"')[:1600],
    )


@bp.route("/webhooks/exotel/<token>/sms", methods=["GET", "POST"])
def exotel_inbound_sms(token: str) -> Response:
    """Exotel's incoming-SMS webhook: keyword replies, answered with an empty 200."""
    _require(verify_exotel_request(request), "exotel")
    _reply(_exotel_reply(request))
    return Response("", status=200, mimetype="text/plain")
