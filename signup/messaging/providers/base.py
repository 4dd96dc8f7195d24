"""The SmsSender interface every SMS provider implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, NewConnectionError

# Idle connections kept per provider host. A threads-pool sending worker (docs/deployment.md)
# has up to this many requests in flight at once; a smaller pool would close and reopen (with a
# new TLS handshake) every connection beyond it. Only connections actually opened cost anything.
HTTP_POOL_SIZE = 256


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


def http_session(pool_size: int = HTTP_POOL_SIZE) -> requests.Session:
    """A requests session whose connection pool can serve `pool_size` threads at once."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


RETRY_AFTER_CAP = 3600.0  # a longer Retry-After is read as this: the backoff cap decides


def retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def callback_url(config: Mapping[str, Any], path: str) -> str | None:
    """PUBLIC_BASE_URL + path, or None when we do not know our public address."""
    base = config.get("PUBLIC_BASE_URL")
    return f"{base.rstrip('/')}{path}" if base else None


def _never_sent(exc: BaseException) -> bool:
    """True when the connection failed before the request could leave (refused, no DNS)."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError | NameResolutionError | requests.ConnectTimeout):
            return True
        stack += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return False


def network_error(exc: requests.RequestException, provider: str) -> SendError:
    """Classify a failed HTTP call: retry only when the request surely never left."""
    name = type(exc).__name__
    if _never_sent(exc):
        return SendError(f"{provider} unreachable: {name}", transient=True)
    return SendError(
        f"{provider} gave no answer ({name}): it may have the message; review",
        transient=False,
        ambiguous=True,
    )
