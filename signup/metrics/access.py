"""Who may read /metrics: a bearer token and/or an address allowlist; off when neither is set.

With neither METRICS_TOKEN nor METRICS_ALLOW, /metrics answers 404 in production and is open
in development (`signup serve --demo`). With both, a scraper needs both.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signup.config import ConfigError, allowed_networks

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Policy:
    """The parsed METRICS_* settings."""

    token: bytes | None
    networks: tuple[Network, ...]
    open_by_default: bool

    @property
    def configured(self) -> bool:
        """True when a token or an allowlist guards the endpoint."""
        return self.token is not None or bool(self.networks)


def settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """METRICS_TOKEN and METRICS_ALLOW from the app config, else from the environment."""
    return {
        name: config.get(name) if config.get(name) is not None else os.environ.get(name) or None
        for name in ("METRICS_TOKEN", "METRICS_ALLOW")
    }


def policy(config: Mapping[str, Any]) -> Policy:
    """Build the policy, refusing a short token or a malformed allowlist at start-up."""
    values = settings(config)
    token = values["METRICS_TOKEN"]
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"METRICS_TOKEN must be at least {MIN_TOKEN_LENGTH} characters")
    try:
        networks = tuple(allowed_networks(values["METRICS_ALLOW"]))
    except ValueError as exc:
        raise ConfigError(f"METRICS_ALLOW: {exc}") from exc
    return Policy(
        token=token.encode() if token else None,
        networks=networks,
        open_by_default=config.get("SIGNUP_ENV") == "development",
    )


def _address_allowed(remote: str | None, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    return any(address in network for network in networks)


def _token_ok(authorization: str | None, expected: bytes) -> bool:
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), expected)


def decide(rule: Policy, authorization: str | None, remote: str | None) -> int:
    """The HTTP status for a scrape: 200 to serve, 404 when off, 403 or 401 when refused."""
    if not rule.configured:
        return 200 if rule.open_by_default else 404
    if rule.networks and not _address_allowed(remote, rule.networks):
        return 403
    if rule.token is not None and not _token_ok(authorization, rule.token):
        return 401
    return 200
