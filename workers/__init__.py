"""The Celery application: `celery -A workers worker` and `celery -A workers beat`."""

from __future__ import annotations

from celery import Celery

from signup import create_app

flask_app = create_app()
celery: Celery = flask_app.extensions["celery"]

__all__ = ["celery", "flask_app"]
