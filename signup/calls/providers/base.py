"""The interface every inbound-call provider implements: verify, parse, answer."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Request, Response
from werkzeug.datastructures import MultiDict

RAW_LIMIT = 64  # raw From/To are kept for audit, cut to the column's size
CALL_ID_LIMIT = 64


@dataclass(frozen=True, slots=True)
class Answer:
    """A webhook's answer: built once per provider, sent by Flask or by the WSGI fast path."""

    status: int
    content_type: str  # with its charset, as sent
    body: bytes

    def response(self) -> Response:
        """The answer as a Flask response."""
        return Response(self.body, status=self.status, content_type=self.content_type)


@dataclass(frozen=True, slots=True)
class InboundCall:
    """A provider's incoming-call request reduced to what we record (raw values uncut)."""

    provider: str
    provider_call_id: str
    from_raw: str
    to_raw: str


def call_id_or_digest(raw_id: str, fallback_material: str | Callable[[], str]) -> str:
    """The provider's call id, or a stable digest when it is missing or oversized.

    A digest keeps replays of the same odd request idempotent instead of refusing the call.
    The material may be a function, so the common case never builds it.
    """
    if raw_id and len(raw_id) <= CALL_ID_LIMIT and raw_id.isascii() and raw_id.isprintable():
        return raw_id
    if not raw_id and callable(fallback_material):
        fallback_material = fallback_material()
    material = raw_id or fallback_material
    assert isinstance(material, str)
    digest = hashlib.sha256(material.encode("utf-8", "replace")).hexdigest()
    return "sha256:" + digest[:48]


def form_material(fields: MultiDict[str, str]) -> str:
    """Every field of a request, sorted, as one string: what a missing call id is digested from."""
    return "&".join(f"{k}={v}" for k, v in sorted(fields.items(multi=True)))


def clip(value: str | None) -> str:
    """Cut a raw field to what we store; NUL, which PostgreSQL text refuses, becomes U+FFFD."""
    return (value or "")[:RAW_LIMIT].replace("\x00", "\ufffd")


class CallProvider(Protocol):
    """One telephony provider's incoming-call webhook."""

    name: str

    def verify(self, request: Request, config: Mapping[str, Any]) -> bool:
        """True when the request really comes from the provider (`config`: the app's)."""
        ...

    def parse(self, request: Request) -> InboundCall:
        """Read the call's id and numbers; never raises on odd or missing fields."""
        ...

    def answer(self) -> Answer:
        """The response that ends the call unanswered, so nobody is billed.

        The same every time: the fast path turns it into bytes once.
        """
        ...
