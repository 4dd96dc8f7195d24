"""Living with gunicorn's gevent worker: keep CPU-heavy native calls off the event loop.

The web tier runs every request of a process on one thread with gevent (docs/deployment.md):
waiting on PostgreSQL, Redis or a socket lets the other requests run, but a native call that
computes for tens of milliseconds without yielding (Argon2 on a login) would hold up every
webhook in that process. Such calls go to gevent's pool of real threads, where the C code
releases the GIL and the loop carries on. Without gevent they simply run here.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def cooperative() -> bool:
    """True in a gevent-patched process (gunicorn's gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def off_loop(function: Callable[..., T], *args: Any) -> T:
    """Run a CPU-heavy native call on a real thread under gevent; plainly otherwise.

    An exception comes back as a value and is raised here: raised in the pool, gevent's hub
    would also print it to stderr, past the logs' redaction (signup.logs).
    """
    if not cooperative():
        return function(*args)
    import gevent

    ok, outcome = gevent.get_hub().threadpool.apply(_outcome, (function, args))
    if not ok:
        raise outcome
    result: T = outcome
    return result


def _outcome(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
    """(True, the result) or (False, the exception): nothing escapes to the pool's hub."""
    try:
        return True, function(*args)
    except Exception as exc:
        return False, exc


class _HubErrors(io.TextIOBase):
    """gevent's exception stream: what its hub would print to stderr becomes one log record.

    The hub writes an uncaught greenlet or thread-pool exception in pieces (the traceback, the
    time, then "<context> failed with <type>" and a blank line); the pieces are joined and
    logged at the end, so the logs' redaction (signup.logs) masks them like any other line.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pieces: list[str] = []

    def writable(self) -> bool:
        """Always: it is a stream to write to."""
        return True

    def write(self, text: str) -> int:
        """Collect a piece; log the whole report when the hub has finished writing it."""
        self._pieces.append(text)
        if text.endswith("\n\n") or text == "\n":
            report, self._pieces = "".join(self._pieces).strip(), []
            logging.getLogger("gevent.hub").error("greenlet.error", extra={"report": report})
        return len(text)


def route_hub_errors() -> None:
    """Send what gevent's hubs (every thread's) would print to stderr to the logs instead."""
    if not cooperative():
        return
    from gevent.hub import Hub

    if not isinstance(getattr(Hub, "exception_stream", None), _HubErrors):
        Hub.exception_stream = _HubErrors()
