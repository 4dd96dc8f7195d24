"""Inbound-call providers, one module each."""

from __future__ import annotations

from signup.calls.providers.base import CallProvider, InboundCall
from signup.calls.providers.exotel import ExotelCalls
from signup.calls.providers.twilio import TwilioCalls

PROVIDERS: dict[str, CallProvider] = {"twilio": TwilioCalls(), "exotel": ExotelCalls()}

__all__ = ["PROVIDERS", "CallProvider", "InboundCall"]
