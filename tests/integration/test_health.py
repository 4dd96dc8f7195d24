"""Health checks: liveness always, readiness only when the database and broker answer."""

from __future__ import annotations

import time
from pathlib import Path

import redis
from flask import Flask
from flask.testing import FlaskClient

from signup import create_app
from signup.health import heartbeat
from signup.health.tasks import beat
from tests.helpers import REDIS_URL, base_config


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_when_postgres_and_redis_answer(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json["failing"] == []


def test_readyz_names_the_failing_parts() -> None:
    app = create_app(
        base_config(
            REDIS_URL="redis://127.0.0.1:1/0",
            SQLALCHEMY_DATABASE_URI="postgresql+psycopg://postgres@127.0.0.1:1/none",
        )
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["failing"] == ["database", "broker"]


def test_readyz_reports_the_workers_heartbeat(app: Flask, client: FlaskClient) -> None:
    """Never seen, then alive, then stale; production reports it without failing."""
    redis.Redis.from_url(REDIS_URL).delete(heartbeat.KEY)
    assert client.get("/readyz").json["checks"]["worker"] == "never"
    beat.run()
    assert client.get("/readyz").json["checks"]["worker"] == "ok"
    with app.app_context():
        heartbeat.record(time.time() - heartbeat.STALE_AFTER - 1)
    response = client.get("/readyz")
    assert (response.status_code, response.json["checks"]["worker"]) == (200, "stale")
    assert response.json["failing"] == []


def test_in_development_a_silent_worker_fails_readiness(tmp_path: Path) -> None:
    """signup serve runs web and worker as one product: a dead worker is not ready."""
    app = create_app(base_config(SIGNUP_ENV="development", REDIS_URL=None, SCHEMA_MIGRATIONS=False))
    app.instance_path = str(tmp_path)
    client = app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 503 and "worker" in response.json["failing"]
    with app.app_context():
        heartbeat.record()
    response = client.get("/readyz")
    assert response.json["checks"]["worker"] == "ok"
    assert "worker" not in response.json["failing"]
