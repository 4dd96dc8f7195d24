"""Twilio's voice webhook: X-Twilio-Signature, form fields, and <Reject reason="busy"/>."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

from flask import Request, current_app
from twilio.request_validator import RequestValidator, add_port, remove_port
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.datastructures import MultiDict
from werkzeug.sansio.utils import get_current_url

from signup.calls.providers.base import Answer, InboundCall, call_id_or_digest, form_material

_REJECT = VoiceResponse()
_REJECT.reject(reason="busy")
REJECT_TWIML = str(_REJECT)
REJECT = Answer(200, "text/xml; charset=utf-8", REJECT_TWIML.encode())


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


@functools.lru_cache(maxsize=8)
def _validator(token: str) -> RequestValidator:
    """One RequestValidator per auth token, not one per request."""
    return RequestValidator(token)


@functools.lru_cache(maxsize=256)
def url_variants(url: str) -> tuple[str, ...]:
    """The URLs RequestValidator.validate accepts a signature over: without and with the port.

    The one spelled as given comes first: Twilio signs the URL as configured, so a genuine
    request needs one HMAC instead of validate's two.
    """
    parsed = urlparse(url)
    variants = (remove_port(parsed), add_port(parsed))
    return tuple(dict.fromkeys(sorted(variants, key=lambda variant: variant != url)))


class _FormValues:
    """A form as RequestValidator reads it: `getall` first, each field's list as stored.

    Given a werkzeug MultiDict, RequestValidator finds no `getall`, catches AttributeError and
    falls back to `getlist`, once per field, and getlist copies and converts. A MultiDict is a
    dict of each field's list of values, so the dict's own look-up hands the list over as it
    is (tests/unit/test_twilio_form.py checks that this still equals getlist).
    """

    __slots__ = ("_form", "getall")

    def __init__(self, form: MultiDict[str, str]) -> None:
        self._form = form
        self.getall = functools.partial(dict.__getitem__, form)

    def __iter__(self) -> Iterator[str]:
        return iter(self._form)

    def __len__(self) -> int:
        return len(self._form)


def signature_matches(token: str, url: str, params: MultiDict[str, str], signature: str) -> bool:
    """RequestValidator.validate for a form-encoded request, stopping at the first match.

    Accepts exactly what validate accepts (twilio's compute_signature over the URL without
    and with its port), compared in constant time.
    """
    given = signature.encode("utf-8", "replace")
    validator = _validator(token)
    values = _FormValues(params)
    return any(
        hmac.compare_digest(validator.compute_signature(variant, values).encode(), given)
        for variant in url_variants(url)
    )


def verify_twilio_request(request: Request, config: Mapping[str, Any] | None = None) -> bool:
    """Check X-Twilio-Signature with twilio's algorithm over the form parameters."""
    settings = current_app.config if config is None else config
    token = settings.get("TWILIO_AUTH_TOKEN")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    url = signed_url(request, settings.get("PUBLIC_BASE_URL"))
    return signature_matches(token, url, request.form, signature)


class TwilioCalls:
    """Twilio's incoming-call webhook."""

    name = "twilio"

    def verify(self, request: Request, config: Mapping[str, Any]) -> bool:
        """True when the Twilio signature matches."""
        return verify_twilio_request(request, config)

    def parse(self, request: Request) -> InboundCall:
        """Read CallSid, From and To (or their legacy Caller/Called mirrors)."""
        form = request.form
        return InboundCall(
            provider=self.name,
            provider_call_id=call_id_or_digest(
                form.get("CallSid", ""), lambda: form_material(form)
            ),
            from_raw=form.get("From", form.get("Caller", "")),
            to_raw=form.get("To", form.get("Called", "")),
        )

    def answer(self) -> Answer:
        """Reject as busy: Twilio never picks up, so neither side is billed."""
        return REJECT
