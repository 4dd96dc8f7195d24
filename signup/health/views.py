"""`/healthz` says the process runs; `/readyz` says the database and broker answer, and
whether a worker has been seen lately."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from signup.extensions import db
from signup.health import heartbeat

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """200 while the process runs."""
    return jsonify(status="ok")


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        db.session.rollback()
        return False
    return True


def _broker_ok() -> bool:
    celery_app = current_app.extensions["celery"]
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception:
        return False
    return True


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """200 when the database and the broker answer, else 503 naming what failed.

    The worker's heartbeat is reported too (`worker`: ok, stale or never). It fails readiness
    only in development, where `signup serve` runs web and worker as one product; in production
    the webhook keeps recording calls without workers, so a load balancer must not drop the web
    tier for them: alert on the reported status (or the outbox metrics) instead.
    """
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    worker = heartbeat.status()
    failing = [name for name, ok in checks.items() if not ok]
    if worker != "ok" and current_app.config["SIGNUP_ENV"] == "development":
        failing.append("worker")
    body = jsonify(
        status="ready" if not failing else "unavailable",
        failing=failing,
        checks={**{k: "ok" if v else "failing" for k, v in checks.items()}, "worker": worker},
    )
    return body, (200 if not failing else 503)
