"""The Celery application: `celery -A workers worker` and `celery -A workers beat`."""

from __future__ import annotations

import sys

from celery import Celery

from signup import create_app
from signup.config import ConfigError
from signup.messaging.providers import http

try:
    flask_app = create_app()
except ConfigError as exc:  # one line naming the setting, not a traceback
    sys.exit(f"Error: {exc}")
celery: Celery = flask_app.extensions["celery"]
http.preload()  # workers send SMS; web processes (signup:create_app()) never load it

__all__ = ["celery", "flask_app"]
