"""The interface every inbound-call provider implements: verify, parse, answer."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Request, Response

RAW_LIMIT = 64  # raw From/To are kept for audit, cut to the column's size


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


def single_id(values: list[str], pattern: re.Pattern[str]) -> str | None:
    """A field's value when it was sent exactly once and matches the provider's id format.

    A provider's request id is what makes a retry or a replay one event, so a request
    without one is refused, never stored under an id of our making: a signed Twilio body
    whose names and values are re-split (`CallSidC=A0123…` signs the same as
    `CallSid=CA0123…`) loses its id that way and must not become a new call or reply.
    """
    if len(values) != 1 or not pattern.fullmatch(values[0]):
        return None
    return values[0]


def clip(value: str | None) -> str:
    """Cut a raw field to what we store; NUL, which PostgreSQL text refuses, becomes U+FFFD."""
    return (value or "")[:RAW_LIMIT].replace("\x00", "\ufffd")


class CallProvider(Protocol):
    """One telephony provider's incoming-call webhook."""

    name: str

    def verify(self, request: Request, config: Mapping[str, Any]) -> bool:
        """True when the request really comes from the provider (`config`: the app's)."""
        ...

    def parse(self, request: Request) -> InboundCall | None:
        """Read the call's id and numbers; None without a well-formed call id (never raises)."""
        ...

    def answer(self) -> Answer:
        """The response that ends the call unanswered, so nobody is billed.

        The same every time: the fast path turns it into bytes once.
        """
        ...
