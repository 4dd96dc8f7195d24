"""The SMS sender registry: one module per provider, chosen by SMS_PROVIDER."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from signup.messaging.providers.base import Dlt, OutboundSms, SendError, SendResult, SmsSender
from signup.messaging.providers.console import ConsoleSender
from signup.messaging.providers.exotel import ExotelSender
from signup.messaging.providers.twilio import TwilioSender

SENDERS: dict[str, Callable[[Mapping[str, Any]], SmsSender]] = {
    "console": ConsoleSender.from_config,
    "twilio": TwilioSender.from_config,
    "exotel": ExotelSender.from_config,
}

__all__ = ["SENDERS", "Dlt", "OutboundSms", "SendError", "SendResult", "SmsSender", "build_sender"]


def build_sender(config: Mapping[str, Any]) -> SmsSender:
    """Build the sender named by SMS_PROVIDER; raises ValueError for an unknown name."""
    name = config.get("SMS_PROVIDER") or "console"
    try:
        factory = SENDERS[name]
    except KeyError:
        raise ValueError(
            f"SMS_PROVIDER={name!r} is not one of {', '.join(sorted(SENDERS))}"
        ) from None
    return factory(config)
