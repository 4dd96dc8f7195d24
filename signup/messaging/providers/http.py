"""HTTP for the SMS senders: a pooled session per sender, answers read once, failures as SendError.

requests and urllib3 (about 5 MB of a process) are imported by the first post, not with this
module: web workers build a sender at start (so a bad provider setting fails there) but never
send, and stay without them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from signup.messaging.providers.base import SendError

if TYPE_CHECKING:
    import requests

# Idle connections kept per provider host. A threads-pool sending worker (docs/deployment.md)
# has up to this many requests in flight at once; a smaller pool would close and reopen (with a
# new TLS handshake) every connection beyond it. Only connections actually opened cost anything.
HTTP_POOL_SIZE = 256
RETRY_AFTER_CAP = 3600.0  # a longer Retry-After is read as this: the backoff cap decides


@dataclass(frozen=True, slots=True)
class Reply:
    """A provider's HTTP answer: status, body, its JSON (None when it is not JSON), Retry-After."""

    status: int
    body: bytes
    payload: Any
    retry_after: float | None

    @property
    def text(self) -> str:
        """The body as text, for error messages (requests' own `text` guesses the charset)."""
        return self.body.decode("utf-8", "replace")


def preload() -> None:
    """Import the HTTP stack now: for processes that send, so a first send does not spend its
    rate-limit slot importing it (about 0.1 s, enough to bunch the first sends together)."""
    import requests.adapters  # noqa: F401 - loaded for later


class Client:
    """Form POSTs to one provider with its credentials, on a session shared by all threads."""

    def __init__(self, provider: str, auth: tuple[str, str], pool_size: int = HTTP_POOL_SIZE):
        self.provider = provider
        self._auth = auth
        self._pool_size = pool_size
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    def post(self, url: str, data: dict[str, str], timeout: float) -> Reply:
        """POST the form; raise SendError when no answer came (retry only if it never left)."""
        import requests  # here, not at the top: see the module's docstring

        try:
            response = self._open().post(url, data=data, timeout=timeout)
        except requests.RequestException as exc:
            raise network_error(exc, self.provider) from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        return Reply(
            response.status_code,
            response.content,
            payload,
            retry_after(response.headers.get("Retry-After")),
        )

    def _open(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                import requests  # here, not at the top: see the module's docstring
                from requests.adapters import HTTPAdapter

                session = requests.Session()
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self._pool_size)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.auth = self._auth
                session.headers["Accept"] = "application/json"
                self._session = session
            return self._session


def retry_after(raw: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent."""
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


def _never_sent(exc: BaseException) -> bool:
    """True when the connection failed before the request could leave (refused, no DNS)."""
    import requests  # loaded already: one of its exceptions came
    from urllib3.exceptions import NameResolutionError, NewConnectionError

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


def network_error(exc: BaseException, provider: str) -> SendError:
    """Classify a failed HTTP call: retry only when the request surely never left."""
    name = type(exc).__name__
    if _never_sent(exc):
        return SendError(f"{provider} unreachable: {name}", transient=True)
    return SendError(
        f"{provider} gave no answer ({name}): it may have the message; review",
        transient=False,
        ambiguous=True,
    )
