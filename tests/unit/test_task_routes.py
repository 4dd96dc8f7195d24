"""Task routing: each kind of work on its own queue; a worker without -Q consumes them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from signup import create_app
from signup.tasking import QUEUES, TASK_QUEUES

EXPECTED = {
    "signup.health.tasks.heartbeat": "intake",
    "signup.calls.tasks.relay_calls": "intake",
    "signup.calls.tasks.process_calls": "intake",
    "signup.calls.tasks.replay_spool": "intake",
    "signup.messaging.tasks.send_message": "sending",
    "signup.messaging.tasks.send_messages": "sending",
    "signup.messaging.tasks.relay_messages": "sending",
    "signup.messaging.tasks.sweep_stale_messages": "sending",
    "signup.calls.tasks.purge_raw_caller_strings": "maintenance",
    "signup.admin.tasks.purge_import_previews": "maintenance",
    "signup.admin.tasks.read_import": "maintenance",
    "signup.admin.tasks.relay_imports": "maintenance",
}


@pytest.fixture
def celery_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> object:
    for name in ("DATABASE_URL", "REDIS_URL", "SIGNUP_ENV", "SECRET_KEY", "SMS_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGNUP_INSTANCE_PATH", str(tmp_path))
    return create_app().extensions["celery"]


def test_every_task_is_routed_to_its_queue(celery_app: object) -> None:
    assert TASK_QUEUES == EXPECTED
    router = celery_app.amqp.router  # type: ignore[attr-defined]
    for task, queue in EXPECTED.items():
        route = router.route({}, task)
        assert route["queue"].name == queue, task
        assert route["queue"].routing_key == queue


def test_every_registered_task_lands_on_a_consumed_queue(celery_app: object) -> None:
    router = celery_app.amqp.router  # type: ignore[attr-defined]
    for task in celery_app.tasks:  # type: ignore[attr-defined]
        if task.startswith("signup."):
            assert router.route({}, task)["queue"].name in QUEUES, task


def test_unrouted_tasks_go_to_intake(celery_app: object) -> None:
    route = celery_app.amqp.router.route({}, "signup.somewhere.tasks.new_job")  # type: ignore[attr-defined]
    assert route["queue"].name == "intake"


def test_a_worker_without_queues_consumes_every_queue(celery_app: object) -> None:
    assert (
        set(celery_app.amqp.queues.consume_from)
        == set(QUEUES)
        == {  # type: ignore[attr-defined]
            "intake",
            "sending",
            "maintenance",
        }
    )


def test_beat_entries_are_routed_too(celery_app: object) -> None:
    schedule = celery_app.conf.beat_schedule  # type: ignore[attr-defined]
    router = celery_app.amqp.router  # type: ignore[attr-defined]
    for entry in schedule.values():
        assert (
            router.route(dict(entry.get("options", {})), entry["task"])["queue"].name
            == (EXPECTED[entry["task"]])
        )
