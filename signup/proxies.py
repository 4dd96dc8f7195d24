"""The client's address and scheme behind TRUSTED_PROXIES, set once for every later reader.

One WSGI middleware, outermost, rewrites `REMOTE_ADDR` and `wsgi.url_scheme` in the environ
before anything reads them: the webhook fast path, Flask's `request.remote_addr` and
`request.is_secure` (so the login throttle, EXOTEL_ALLOWED_IPS, METRICS_ALLOW, signature URLs
and log fields) and gunicorn's access line (`%(h)s` reads the same environ).

Only a request whose peer is a trusted proxy has `X-Forwarded-For` / `X-Forwarded-Proto`
honoured: the client is the right-most address of the chain (forwarded addresses, then the
peer) that is not itself a trusted proxy, as werkzeug's ProxyFix counts hops; a forwarded
value that is not an IP address (`garbage`, `unknown`) ends the chain there, so it is never
taken for the client. From any other
peer the headers are removed, so no later code can be fooled by them.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
PEER_KEY = "signup.proxy.peer"  # the direct peer's address, kept when REMOTE_ADDR is replaced
_FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO")
_SCHEMES = frozenset({"http", "https"})


def client_address(peer: str, forwarded_for: str | None, networks: Sequence[Network]) -> str:
    """The right-most address of `forwarded_for` + `peer` that is not a trusted proxy.

    A forwarded value that is not an IP address (`garbage`, `unknown`, a host name) says
    nothing we can check: the chain stops there, so the nearest hop before it answers.
    """
    trusted = _matcher(tuple(networks))
    hops = [part.strip() for part in (forwarded_for or "").split(",") if part.strip()]
    valid = list(itertools.takewhile(_is_ip, reversed(hops)))[::-1]
    chain = [*valid, peer]
    for address in reversed(chain):
        if not trusted(address):
            return address
    return chain[0]  # every hop is a proxy of ours: the farthest one is the client


def _is_ip(value: str) -> bool:
    """True when the value is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _matcher(networks: tuple[Network, ...]) -> Callable[[str], bool]:
    """A cached `address is inside these networks` test (few peers, many requests)."""

    @functools.lru_cache(maxsize=4096)
    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    return trusted


def _scheme(forwarded_proto: str | None) -> str | None:
    """The scheme the nearest proxy saw (the right-most value), when it is http or https."""
    value = (forwarded_proto or "").rpartition(",")[2].strip().lower()
    return value if value in _SCHEMES else None


class TrustedProxies:
    """WSGI middleware: honour X-Forwarded-For/-Proto from trusted peers only."""

    def __init__(self, wsgi_app: WSGIApplication, networks: Iterable[Network]) -> None:
        self._next = wsgi_app
        self._networks = tuple(networks)
        self._trusted = _matcher(self._networks)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Rewrite the client's address and scheme for a trusted peer; drop the headers else."""
        peer = environ.get("REMOTE_ADDR") or ""
        if self._networks and self._trusted(peer):
            environ[PEER_KEY] = peer
            environ["REMOTE_ADDR"] = client_address(
                peer, environ.get("HTTP_X_FORWARDED_FOR"), self._networks
            )
            scheme = _scheme(environ.get("HTTP_X_FORWARDED_PROTO"))
            if scheme is not None:
                environ["wsgi.url_scheme"] = scheme
        else:
            for header in _FORWARDED:
                environ.pop(header, None)
        return self._next(environ, start_response)
