"""Multiprocess metrics: gunicorn (2 workers) and a prefork Celery worker share one folder, and
one scrape of any gunicorn worker shows the Celery pool's task timings and the database gauges."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from signup.extensions import db
from tests.e2e.conftest import Worker, wait_for
from tests.faults.web import free_port, ring_all, served
from tests.helpers import DATABASE_URL, REDIS_URL
from tests.integration.factories import campaign

pytestmark = pytest.mark.e2e
TOKEN = "e2e-metrics-token-0123456789"


def scrape(
    base: str, token: str | None = TOKEN
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(base + "/metrics", headers=headers, timeout=10)
    response.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def task_runs(found: dict[tuple[str, frozenset[tuple[str, str]]], float], prefix: str) -> float:
    return sum(
        value
        for (name, labels), value in found.items()
        if name == "signup_task_duration_seconds_count"
        and dict(labels).get("task", "").startswith(prefix)
        and dict(labels).get("outcome") == "success"
    )


def test_one_scrape_adds_up_gunicorn_workers_and_celery_pool_processes(
    committed: Flask, start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    jan = campaign()
    db.session.commit()
    folder = tmp_path / "prometheus"
    folder.mkdir()
    shared = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "METRICS_TOKEN": TOKEN}
    worker_port = free_port()
    start_worker(beat=True, concurrency=2, METRICS_PORT=str(worker_port), **shared)
    with served(DATABASE_URL, REDIS_URL, tmp_path, RELAY_NUDGE="false", **shared) as (base, _):
        assert requests.get(base + "/metrics", timeout=10).status_code == 401
        answers = ring_all(base, [("CA" + "e" * 32, "+919911278181")], jan.number)
        assert [status for status, _ in answers] == [200]

        def processed_and_sent() -> bool:
            found = scrape(base)
            messages = found.get(("signup_sms_messages", frozenset({("status", "sent")})))
            return task_runs(found, "signup.calls.") >= 2 and messages == 1

        wait_for(processed_and_sent, 60, "task timings from the Celery pool in the scrape")
        found = scrape(base)
        assert task_runs(found, "signup.messaging.tasks.send_message") == 1
        unprocessed = found[("signup_calls_unprocessed", frozenset({("state", "pending")}))]
        assert unprocessed == 0
        assert found[("signup_metrics_database_up", frozenset())] == 1

        # The worker's own listener (METRICS_PORT): its pool's timings, same guard, no database.
        worker = f"http://127.0.0.1:{worker_port}"
        assert requests.get(worker + "/metrics", timeout=10).status_code == 401
        own = scrape(worker)
        assert task_runs(own, "signup.messaging.tasks.send_message") == 1
        assert ("signup_metrics_database_up", frozenset()) not in own
    # Every process wrote its own files; none is shared between two processes.
    assert len({path.name.split("_")[-1] for path in folder.glob("*.db")}) >= 2
