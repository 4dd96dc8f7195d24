"""Health checks: liveness always, readiness only when the database and broker answer."""

from __future__ import annotations

from flask.testing import FlaskClient

from signup import create_app
from tests.helpers import base_config


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
