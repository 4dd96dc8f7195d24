"""The SmsSender interface every SMS provider implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutboundSms:
    """What a sender needs to send one message."""

    message_id: int
    to: str
    body: str
    status_callback: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """The provider's answer when it accepted a message."""

    provider_message_id: str | None
    status: str = "sent"


class SendError(Exception):
    """The provider refused or could not be reached.

    transient: retrying later may succeed; opted_out: the recipient has unsubscribed
    at the provider (Twilio 21610), so we must record their withdrawal.
    """

    def __init__(
        self, message: str, *, code: int | None = None, transient: bool, opted_out: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient
        self.opted_out = opted_out


class SmsSender(Protocol):
    """Sends one SMS, or raises SendError."""

    name: str

    def send(self, sms: OutboundSms) -> SendResult:
        """Hand one message to the provider."""
        ...
