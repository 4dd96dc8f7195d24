"""Prometheus metrics: `/metrics`, Celery task timings, and database gauges read at scrape time."""

from __future__ import annotations

from flask import Flask

from signup.extensions import csrf, limiter


def init_app(app: Flask) -> None:
    """Read the METRICS_* settings, time Celery tasks, and serve /metrics (and from the worker)."""
    from signup.metrics import access, exporter, tasks
    from signup.metrics.views import bp

    rule = access.policy(app.config)
    app.extensions["metrics_policy"] = rule
    tasks.connect()
    exporter.serve_from_worker(app.config, rule)
    app.register_blueprint(bp)
    csrf.exempt(bp)
    limiter.exempt(bp)
