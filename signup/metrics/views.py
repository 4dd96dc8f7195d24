"""`GET /metrics`: the Prometheus text exposition, behind the METRICS_* guard."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST

from signup.logs import event
from signup.metrics import access, registry
from signup.metrics.collectors import DatabaseCollector

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Every process's metrics and the database gauges, to a scraper the policy lets in."""
    rule: access.Policy = current_app.extensions["metrics_policy"]
    status = access.decide(rule, request.headers.get("Authorization"), request.remote_addr)
    if status == 404:
        abort(404)
    if status != 200:
        event(log, logging.WARNING, "metrics.refused", status=status, remote=request.remote_addr)
        if status == 401:
            return Response(
                "unauthorized\n",
                401,
                {"WWW-Authenticate": 'Bearer realm="metrics"'},
                mimetype="text/plain",
            )
        abort(status)
    body = registry.render(registry.build([DatabaseCollector()]))
    return Response(body, 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
