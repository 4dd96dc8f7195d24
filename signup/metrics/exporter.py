"""`/metrics` served by the Celery worker itself on METRICS_PORT, behind the same guard as the web.

For deployments where the worker shares no PROMETHEUS_MULTIPROC_DIR with the web processes
(e.g. one container each): the worker's main process listens, and in multiprocess mode each
scrape adds up its pool processes' files. It has no database gauges; the web serves those.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery import signals
from prometheus_client import CONTENT_TYPE_LATEST

from signup.config import BY_NAME
from signup.metrics import access, registry
from signup.proxies import Network, TrustedProxies

StartResponse = Callable[..., Any]
_REASONS = {401: "401 Unauthorized", 403: "403 Forbidden", 404: "404 Not Found"}


class _QuietHandler(WSGIRequestHandler):
    """No access line on stderr for every scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        """Say nothing."""


def wsgi_app(rule: access.Policy) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI app answering GET /metrics with this host's process metrics, as the policy allows."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status = 404
        if environ.get("PATH_INFO") == "/metrics" and environ.get("REQUEST_METHOD") == "GET":
            status = access.decide(
                rule, environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR")
            )
        if status != 200:
            headers = [("Content-Type", "text/plain")]
            if status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="metrics"'))
            start_response(_REASONS[status], headers)
            return [_REASONS[status].encode() + b"\n"]
        body = registry.render(registry.build())
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [body]

    return app


def start(
    port: int,
    rule: access.Policy,
    host: str = "0.0.0.0",  # noqa: S104
    proxies: Sequence[Network] = (),
) -> WSGIServer:
    """Listen on host:port in a daemon thread; the guard, not the address, keeps scrapers out.

    Behind TRUSTED_PROXIES the guard sees the client's address, as the web's does.
    """
    app = TrustedProxies(wsgi_app(rule), proxies)
    server = make_server(host, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-exporter", daemon=True).start()
    return server


def port_setting(config: Mapping[str, Any]) -> int | None:
    """METRICS_PORT from the app config or the environment; None when unset."""
    raw = config.get("METRICS_PORT") or os.environ.get("METRICS_PORT")
    if raw in (None, ""):
        return None
    return int(BY_NAME["METRICS_PORT"].parse("METRICS_PORT", str(raw)))


def serve_from_worker(config: Mapping[str, Any], rule: access.Policy) -> None:
    """When METRICS_PORT is set, start the listener once the Celery worker is ready."""
    port = port_setting(config)
    if port is None:
        return

    def on_ready(**_: Any) -> None:
        start(port, rule, proxies=config.get("TRUSTED_PROXY_NETWORKS") or ())

    signals.worker_ready.connect(on_ready, weak=False, dispatch_uid="signup.metrics.exporter")
