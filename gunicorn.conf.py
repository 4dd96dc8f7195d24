"""Settings gunicorn reads from its working directory (/app in the image, the repo here).

Only what must hold wherever the web tier runs; the command line (Dockerfile,
docker-compose.yml) sets the worker class, workers and bind address.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from typing import Any

# The app alone decides whose X-Forwarded-* headers count (TRUSTED_PROXIES, signup.proxies):
# gunicorn's own scheme rewriting, on by default for 127.0.0.1, would be a second, looser rule.
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}

# Logging: each worker, once the app is loaded, takes over gunicorn's error and access loggers
# (signup.logs.configure): their lines go through the app's one redacting handler, to stderr,
# in LOG_FORMAT. `--access-logfile` still switches access lines on; its file name is not used.


def post_fork(server: Any, worker: Any) -> None:
    """With --preload the app (and its logging) was set up in the master, whose gunicorn
    loggers a reload (HUP) sets up afresh: take them over again in each new worker."""
    logs = sys.modules.get("signup.logs")
    if logs is not None:
        logs.route_all_loggers()


def check_settings() -> None:
    """Refuse a bad setting with one line (exit 2), before the app is loaded anywhere.

    In a child process: the master imports nothing of the app, so each worker still loads it
    (and gevent patches it) from scratch after the fork.
    """
    check = "from signup.config import check_or_exit; check_or_exit()"
    checked = subprocess.run([sys.executable, "-c", check], check=False)  # noqa: S603 - fixed
    if checked.returncode != 0:
        sys.exit(checked.returncode)


def on_starting(server: Any) -> None:
    """Refuse a bad setting in the master with one line, before any worker boots and fails."""
    check_settings()


# `--check-config` and `--print-config` load the app without calling any hook: a bad setting
# would be gunicorn's "Error while loading the application" and a traceback. Check it here.
_ARGUMENTS = {*sys.argv, *os.environ.get("GUNICORN_CMD_ARGS", "").split()}
if _ARGUMENTS & {"--check-config", "--print-config"}:
    check_settings()


def post_worker_init(worker: Any) -> None:
    """Freeze what loading the app allocated, so that collections skip it.

    Flask, SQLAlchemy, phonenumbers' metadata and the rest live as long as the worker. Left
    in the collector's oldest generation, each full collection walked them all: 75-90 ms
    with every request of the process waiting, the webhook's p99. Frozen, a collection only
    walks what requests allocated since.
    """
    gc.collect()
    gc.freeze()
