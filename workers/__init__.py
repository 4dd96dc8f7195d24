"""The Celery application: `celery -A workers worker` and `celery -A workers beat`."""

from __future__ import annotations

from celery import Celery

from signup import create_app
from signup.messaging.providers import http

flask_app = create_app()
celery: Celery = flask_app.extensions["celery"]
http.preload()  # workers send SMS; web processes (signup:create_app()) never load it

__all__ = ["celery", "flask_app"]
