"""Inbound-call providers, one module each."""

from __future__ import annotations

from signup.calls.providers.base import CallProvider, InboundCall
from signup.calls.providers.twilio import TwilioCalls

PROVIDERS: dict[str, CallProvider] = {"twilio": TwilioCalls()}

__all__ = ["PROVIDERS", "CallProvider", "InboundCall"]
