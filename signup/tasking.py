"""Celery wired to the Flask app, best-effort publishing, and the web process's relay nudge."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery, Task
from flask import Flask, current_app, has_app_context
from kombu import Exchange, Queue

from signup.devbroker import TRANSPORT
from signup.logs import event

log = logging.getLogger(__name__)

# Queues by kind of work, so a burst of SMS never delays new calls and a slow hourly job never
# holds either: production runs one worker per kind (`-Q intake,maintenance` on prefork,
# `-Q sending` on threads); a worker started without -Q consumes them all.
INTAKE, SENDING, MAINTENANCE = "intake", "sending", "maintenance"
QUEUES = (INTAKE, SENDING, MAINTENANCE)
EXCHANGE = Exchange("signup", type="direct")
TASK_QUEUES = {
    "signup.calls.tasks.relay_calls": INTAKE,
    "signup.calls.tasks.process_calls": INTAKE,
    "signup.calls.tasks.replay_spool": INTAKE,
    "signup.health.tasks.heartbeat": INTAKE,  # alive means: calls would be processed
    "signup.messaging.tasks.send_message": SENDING,
    "signup.messaging.tasks.send_messages": SENDING,
    "signup.messaging.tasks.relay_messages": SENDING,
    "signup.messaging.tasks.sweep_stale_messages": SENDING,
    "signup.calls.tasks.purge_raw_caller_strings": MAINTENANCE,
    "signup.admin.tasks.purge_import_previews": MAINTENANCE,
    "signup.admin.tasks.read_import": MAINTENANCE,  # an untrusted file, bounded, off intake
    "signup.admin.tasks.relay_imports": MAINTENANCE,
}


_REDIS_TRANSPORT = {"visibility_timeout": 3600, "socket_connect_timeout": 2, "socket_timeout": 5}


def celery_config(app: Flask) -> dict[str, Any]:
    """Celery settings: BROKER_URL, else REDIS_URL, else a broker in the instance folder."""
    redis_url = app.config.get("REDIS_URL")
    config: dict[str, Any] = {
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 2,
        "worker_hijack_root_logger": False,
        # Declared queues are what a worker without -Q consumes; tasks with no route (e.g. new
        # ones) go to intake, which every deployment runs.
        "task_queues": [Queue(name, EXCHANGE, routing_key=name) for name in QUEUES],
        "task_default_queue": INTAKE,
        "task_default_exchange": EXCHANGE.name,
        "task_default_routing_key": INTAKE,
        "task_routes": {name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        "task_create_missing_queues": True,
        "beat_schedule": {
            "relay-calls": {
                "task": "signup.calls.tasks.relay_calls",
                "schedule": 1.0,
                "options": {"expires": 5},
            },
            "relay-messages": {
                "task": "signup.messaging.tasks.relay_messages",
                "schedule": 2.0,
                "options": {"expires": 10},
            },
            "worker-heartbeat": {
                "task": "signup.health.tasks.heartbeat",
                "schedule": 10.0,
                "options": {"expires": 10},
            },
            "replay-spool": {
                "task": "signup.calls.tasks.replay_spool",
                "schedule": 5.0,
                "options": {"expires": 10},
            },
            "purge-raw-caller-strings": {
                "task": "signup.calls.tasks.purge_raw_caller_strings",
                "schedule": 3600.0,
                "options": {"expires": 600},
            },
            "purge-import-previews": {
                "task": "signup.admin.tasks.purge_import_previews",
                "schedule": 3600.0,
                "options": {"expires": 600},
            },
            "relay-imports": {
                "task": "signup.admin.tasks.relay_imports",
                "schedule": 30.0,
                "options": {"expires": 30},
            },
            "sweep-messages": {
                "task": "signup.messaging.tasks.sweep_stale_messages",
                "schedule": float(min(60, app.config.get("SMS_SENDING_STALE_SECONDS") or 60)),
                "options": {"expires": 60},
            },
        },
    }
    broker_url = app.config.get("BROKER_URL")
    if broker_url:  # RabbitMQ (amqp://) or a Redis of its own; REDIS_URL keeps limits and spool
        config["broker_url"] = broker_url
        if broker_url.startswith(("redis://", "rediss://")):
            config["broker_transport_options"] = dict(_REDIS_TRANSPORT)
    elif redis_url:
        config["broker_url"] = redis_url
        config["broker_transport_options"] = dict(_REDIS_TRANSPORT)
    else:
        folder = Path(app.instance_path) / "broker"
        folder.mkdir(parents=True, exist_ok=True)
        config["broker_url"] = "filesystem://localhost/"
        config["broker_transport"] = TRANSPORT  # kombu's, with whole-file writes
        config["broker_transport_options"] = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.2,
        }
        config["beat_schedule_filename"] = str(Path(app.instance_path) / "celerybeat-schedule")
    config.update(app.config.get("CELERY", {}))
    return config


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app whose tasks run inside this Flask app's context."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_config(app))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def publish(task: Any, *args: Any) -> bool:
    """Send a task without retrying; False (and a log line) when the broker is unreachable.

    Callers only publish work whose rows are committed, so a failed publish is picked up
    later by the beat relay and nothing is lost. Inside an app context the message goes to
    that app's broker, never to whichever Celery app a process happened to create last.
    """
    celery = current_app.extensions["celery"] if has_app_context() else task.app
    try:
        celery.send_task(task.name, args=args, retry=False)
    except Exception as exc:  # kombu raises many types when the broker is down
        event(
            log, logging.WARNING, "broker.publish_failed", task=task.name, error=type(exc).__name__
        )
        return False
    return True


def publish_all(task: Any, argument_lists: list[tuple[Any, ...]]) -> int:
    """Publish one task per argument tuple, stopping at the first failure; returns how many went."""
    for sent, args in enumerate(argument_lists):
        if not publish(task, *args):
            return sent
    return len(argument_lists)


class Nudger:
    """Wakes the relay soon after a webhook commits, from a background thread.

    The webhook only sets an event, so it never waits on the broker; bursts coalesce into
    one publish every `interval` seconds, and a broker outage backs off quietly.
    """

    def __init__(self, send: Callable[[], bool], interval: float = 0.05) -> None:
        self._send = send
        self._interval = interval
        self._wake = threading.Event()
        self._pid: int | None = None
        self._lock = threading.Lock()

    def nudge(self) -> None:
        """Ask for a relay run soon; returns at once."""
        if self._pid != os.getpid():  # first use in this process (or after a fork)
            with self._lock:
                if self._pid != os.getpid():
                    self._wake = threading.Event()
                    threading.Thread(target=self._run, name="relay-nudger", daemon=True).start()
                    self._pid = os.getpid()
        self._wake.set()

    def _run(self) -> None:
        failures = 0
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._send():
                failures = 0
                time.sleep(self._interval)
            else:
                failures += 1
                time.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))
