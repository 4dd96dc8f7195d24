"""Twilio's voice webhook: X-Twilio-Signature, form fields, and <Reject reason="busy"/>."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from flask import Request, current_app
from twilio.request_validator import add_port, remove_port
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.datastructures import MultiDict
from werkzeug.sansio.utils import get_current_url

from signup.calls.providers.base import Answer, InboundCall, single_id

_REJECT = VoiceResponse()
_REJECT.reject(reason="busy")
REJECT_TWIML = str(_REJECT)
REJECT = Answer(200, "text/xml; charset=utf-8", REJECT_TWIML.encode())
# Twilio's resource ids: a two-letter type, then 32 hex digits (its API's own patterns).
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-fA-F]{32}")


def signed_url(request: Request, public_base_url: str | None) -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL + path (+ query) when set, else the request's."""
    if not public_base_url:
        return request_url(
            request.scheme, request.host, request.root_path, request.path, request.query_string
        )
    url = public_base_url.rstrip("/") + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    return url


@functools.lru_cache(maxsize=256)
def request_url(scheme: str, host: str, root_path: str, path: str, query: bytes) -> str:
    """werkzeug's Request.url from its parts, remembered: a drive's webhooks share one URL.

    Building it (IRI decoding included) cost a sixth of a webhook's own Python work. The cache
    is bounded because the Host header is the client's; a flood of odd hosts only misses it.
    """
    return get_current_url(scheme, host, root_path, path, query)


@functools.lru_cache(maxsize=256)
def url_variants(url: str) -> tuple[str, ...]:
    """The URLs RequestValidator.validate accepts a signature over: without and with the port.

    The one spelled as given comes first: Twilio signs the URL as configured, so a genuine
    request needs one HMAC instead of validate's two.
    """
    parsed = urlparse(url)
    variants = (remove_port(parsed), add_port(parsed))
    return tuple(dict.fromkeys(sorted(variants, key=lambda variant: variant != url)))


def signed_text(url: str, params: MultiDict[str, str]) -> bytes:
    """What Twilio signs for a form-encoded request: the URL, then each name and value, sorted.

    RequestValidator.compute_signature's string, built without its quadratic `+=`: the names
    sorted, each name's distinct values sorted. A MultiDict is a dict of each field's list of
    values, read here as it is stored (tests/unit/test_twilio_form.py checks this against
    compute_signature over arbitrary forms).
    """
    parts = [url]
    for name in _sorted_names(tuple(params)):
        values = dict.__getitem__(params, name)
        for value in sorted(set(values)):
            parts.append(name)
            parts.append(value)
    return "".join(parts).encode()


def signature_matches(token: str, url: str, params: MultiDict[str, str], signature: str) -> bool:
    """RequestValidator.validate for a form-encoded request, stopping at the first match.

    Accepts exactly what validate accepts: HMAC-SHA1 under the auth token, Base64, over the
    URL without and with its port, compared in constant time. The HMAC keyed with the token
    is set up once and copied for each message, where compute_signature's hmac.new sets it up
    every time (a third of the check's cost).
    """
    given = signature.encode("utf-8", "replace")
    keyed = _keyed_hmac(token)
    return any(
        hmac.compare_digest(_signature(keyed, signed_text(variant, params)), given)
        for variant in url_variants(url)
    )


@functools.lru_cache(maxsize=256)
def _sorted_names(names: tuple[str, ...]) -> list[str]:
    """The form's field names in signing order, remembered: each webhook sends the same fields."""
    return sorted(names)


@functools.lru_cache(maxsize=8)
def _keyed_hmac(token: str) -> hmac.HMAC:
    """HMAC-SHA1 keyed with an auth token and fed nothing yet: copied for each signature."""
    return hmac.new(token.encode(), digestmod=hashlib.sha1)


def _signature(keyed: hmac.HMAC, text: bytes) -> bytes:
    """The X-Twilio-Signature value for `text`: Base64 of its HMAC-SHA1."""
    mac = keyed.copy()
    mac.update(text)
    return base64.b64encode(mac.digest())


def verify_twilio_request(request: Request, config: Mapping[str, Any] | None = None) -> bool:
    """Check a request as twilio's RequestValidator.validate does, never more leniently.

    X-Twilio-Signature over the URL and the form parameters; and when the URL carries a
    `bodySHA256` (Twilio's signing of a JSON body, whose signature covers the URL alone),
    the body's SHA-256 must equal it, so a captured URL and signature cannot carry another body.
    """
    settings = current_app.config if config is None else config
    token = settings.get("TWILIO_AUTH_TOKEN")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature or not body_hash_matches(request):
        return False
    url = signed_url(request, settings.get("PUBLIC_BASE_URL"))
    return signature_matches(token, url, request.form, signature)


def body_hash_matches(request: Request) -> bool:
    """True without a `bodySHA256` query parameter, else when it is the body's SHA-256 (hex)."""
    if "bodySHA256" not in request.args:
        return True
    digest = hashlib.sha256(request.get_data(cache=True)).hexdigest()
    given = request.args.get("bodySHA256", "").encode("utf-8", "replace")
    return hmac.compare_digest(digest.encode(), given)


class TwilioCalls:
    """Twilio's incoming-call webhook."""

    name = "twilio"

    def verify(self, request: Request, config: Mapping[str, Any]) -> bool:
        """True when the Twilio signature matches."""
        return verify_twilio_request(request, config)

    def parse(self, request: Request) -> InboundCall | None:
        """Read CallSid (`CA` and 32 hex digits, else None), From and To (or Caller/Called)."""
        form = request.form
        call_sid = single_id(form.getlist("CallSid"), CALL_SID)
        if call_sid is None:
            return None
        return InboundCall(
            provider=self.name,
            provider_call_id=call_sid,
            from_raw=form.get("From", form.get("Caller", "")),
            to_raw=form.get("To", form.get("Called", "")),
        )

    def answer(self) -> Answer:
        """Reject as busy: Twilio never picks up, so neither side is billed."""
        return REJECT
