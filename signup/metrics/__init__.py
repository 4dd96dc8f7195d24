"""Prometheus metrics: `/metrics`, Celery task timings, and database gauges read at scrape time."""

from __future__ import annotations

from flask import Flask

from signup.extensions import csrf, limiter


def init_app(app: Flask) -> None:
    """Read the METRICS_* settings, time Celery tasks, and serve /metrics."""
    from signup.metrics import access, tasks
    from signup.metrics.views import bp

    app.extensions["metrics_policy"] = access.policy(app.config)
    tasks.connect()
    app.register_blueprint(bp)
    csrf.exempt(bp)
    limiter.exempt(bp)
