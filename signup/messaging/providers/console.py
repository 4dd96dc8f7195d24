"""A sender that logs messages instead of sending them: the embedded default."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from signup.logs import event
from signup.messaging.providers.base import OutboundSms, SendResult
from signup.phones import mask

log = logging.getLogger("signup.sms.console")


class ConsoleSender:
    """Logs each SMS (number masked); the message row is stored like any other."""

    name = "console"
    account = "console"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ConsoleSender:
        """Build from app config (nothing to configure)."""
        return cls()

    def send(self, sms: OutboundSms) -> SendResult:
        """Log the message and report it sent."""
        event(log, logging.INFO, "sms.console", to=mask(sms.to), body=sms.body)
        return SendResult(f"console-{sms.message_id}-{secrets.token_hex(4)}", status="sent")
