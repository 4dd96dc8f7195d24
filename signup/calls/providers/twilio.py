"""Twilio's voice webhook: X-Twilio-Signature, form fields, and <Reject reason="busy"/>."""

from __future__ import annotations

from flask import Request, Response, current_app
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from signup.calls.providers.base import InboundCall, call_id_or_digest

_REJECT = VoiceResponse()
_REJECT.reject(reason="busy")
REJECT_TWIML = str(_REJECT)


def signed_url(request: Request, public_base_url: str | None) -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL + path (+ query) when set, else the request's."""
    if not public_base_url:
        return request.url
    url = public_base_url.rstrip("/") + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    return url


def verify_twilio_request(request: Request) -> bool:
    """Check X-Twilio-Signature with twilio's RequestValidator over the form parameters."""
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    url = signed_url(request, current_app.config.get("PUBLIC_BASE_URL"))
    return bool(RequestValidator(token).validate(url, request.form, signature))


class TwilioCalls:
    """Twilio's incoming-call webhook."""

    name = "twilio"

    def verify(self, request: Request) -> bool:
        """True when the Twilio signature matches."""
        return verify_twilio_request(request)

    def parse(self, request: Request) -> InboundCall:
        """Read CallSid, From and To (or their legacy Caller/Called mirrors)."""
        form = request.form
        from_raw = form.get("From", form.get("Caller", ""))
        to_raw = form.get("To", form.get("Called", ""))
        material = "&".join(f"{k}={v}" for k, v in sorted(form.items(multi=True)))
        return InboundCall(
            provider=self.name,
            provider_call_id=call_id_or_digest(form.get("CallSid", ""), material),
            from_raw=from_raw,
            to_raw=to_raw,
        )

    def answer(self) -> Response:
        """Reject as busy: Twilio never picks up, so neither side is billed."""
        return Response(REJECT_TWIML, status=200, mimetype="text/xml")
