"""The SmsSender interface every SMS provider implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Dlt:
    """India's DLT registration a message is sent under: entity, sender header, template."""

    entity_id: str
    header: str
    template_id: str


@dataclass(frozen=True, slots=True)
class OutboundSms:
    """What a sender needs to send one message."""

    message_id: int
    to: str
    body: str
    dlt: Dlt | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """The provider's answer when it accepted a message."""

    provider_message_id: str | None
    status: str = "sent"


class SendError(Exception):
    """The provider refused or could not be reached.

    transient: retrying later may succeed; opted_out: the recipient has unsubscribed
    at the provider (Twilio 21610), so we must record their withdrawal; ambiguous: the request
    may have reached the provider (no answer), so sending again could send twice; retry_after:
    the provider asked us to wait at least this many seconds (a 429's Retry-After).
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        transient: bool,
        opted_out: bool = False,
        ambiguous: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient
        self.opted_out = opted_out
        self.ambiguous = ambiguous  # the provider may have the message: review, never resend
        self.retry_after = retry_after


class SmsSender(Protocol):
    """Sends one SMS, or raises SendError."""

    name: str
    account: str  # the provider account whose rate limit a send counts against

    def send(self, sms: OutboundSms) -> SendResult:
        """Hand one message to the provider."""
        ...


def callback_url(config: Mapping[str, Any], path: str) -> str | None:
    """PUBLIC_BASE_URL + path, or None when we do not know our public address."""
    base = config.get("PUBLIC_BASE_URL")
    return f"{base.rstrip('/')}{path}" if base else None
