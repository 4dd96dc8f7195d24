"""Exotel's Passthru applet: a GET with the call in the query, a secret token in the path.

Exotel signs nothing, so the token is compared in constant time and an optional IP allowlist
(EXOTEL_ALLOWED_IPS) narrows who may call. The caller hears ringing until we answer, so the
answer is an immediate empty 200.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Request, current_app

from signup.calls.providers.base import Answer, InboundCall, single_id

EMPTY = Answer(200, "text/plain; charset=utf-8", b"")
# Exotel documents no format for CallSid and SmsSid (32 hex digits, sometimes with a suffix
# letter, in practice): a plain token of letters, digits, "_" or "-" that fits the column.
EXOTEL_SID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def address_allowed(
    remote: str | None, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    """True when no allowlist is set, or the remote address is inside it."""
    networks = list(networks)
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    return any(address in network for network in networks)


def verify_exotel_request(request: Request, config: Mapping[str, Any] | None = None) -> bool:
    """Check the path token (constant time) and the optional IP allowlist."""
    settings = current_app.config if config is None else config
    expected = settings.get("EXOTEL_WEBHOOK_TOKEN")
    given = (request.view_args or {}).get("token", "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return False
    return address_allowed(request.remote_addr, settings["EXOTEL_ALLOWED_NETWORKS"])


def unquote(value: str) -> str:
    """Exotel wraps some values (digits) in double quotes."""
    return value.strip().strip('"')


class ExotelCalls:
    """Exotel's Passthru applet for a missed-call ExoPhone."""

    name = "exotel"

    def verify(self, request: Request, config: Mapping[str, Any]) -> bool:
        """True when the path token matches and the address is allowed."""
        return verify_exotel_request(request, config)

    def parse(self, request: Request) -> InboundCall | None:
        """Read CallSid (None when it is missing or odd) and CallFrom/CallTo (older: From/To)."""
        args = request.args
        call_sid = single_id([unquote(v) for v in args.getlist("CallSid")], EXOTEL_SID)
        if call_sid is None:
            return None
        return InboundCall(
            provider=self.name,
            provider_call_id=call_sid,
            from_raw=unquote(args.get("CallFrom", args.get("From", ""))),
            to_raw=unquote(args.get("CallTo", args.get("To", ""))),
        )

    def answer(self) -> Answer:
        """An empty 200: Exotel's flow moves on and the caller's ringing stops."""
        return EMPTY
