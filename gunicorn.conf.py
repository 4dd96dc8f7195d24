"""Settings gunicorn reads from its working directory (/app in the image, the repo here).

Only what must hold wherever the web tier runs; the command line (Dockerfile,
docker-compose.yml) sets the worker class, workers and bind address.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from typing import Any


def on_starting(server: Any) -> None:
    """Refuse a bad setting in the master with one line, before any worker boots and fails.

    In a child process: the master imports nothing of the app, so each worker still loads it
    (and gevent patches it) from scratch after the fork.
    """
    check = "from signup.config import check_or_exit; check_or_exit()"
    checked = subprocess.run([sys.executable, "-c", check], check=False)  # noqa: S603 - fixed
    if checked.returncode != 0:
        sys.exit(checked.returncode)


def post_worker_init(worker: Any) -> None:
    """Freeze what loading the app allocated, so that collections skip it.

    Flask, SQLAlchemy, phonenumbers' metadata and the rest live as long as the worker. Left
    in the collector's oldest generation, each full collection walked them all: 75-90 ms
    with every request of the process waiting, the webhook's p99. Frozen, a collection only
    walks what requests allocated since.
    """
    gc.collect()
    gc.freeze()
