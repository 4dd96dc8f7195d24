"""`/healthz` says the process runs; `/readyz` says the database and broker answer."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from signup.extensions import db

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
    """200 when the database and the broker answer, else 503 naming what failed."""
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    failing = [name for name, ok in checks.items() if not ok]
    body = jsonify(
        status="ready" if not failing else "unavailable",
        failing=failing,
        checks={k: "ok" if v else "failing" for k, v in checks.items()},
    )
    return body, (200 if not failing else 503)
