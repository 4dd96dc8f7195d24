"""Test fixtures: real PostgreSQL (a fresh database, migrated) and real Redis.

Each test runs inside a transaction that is rolled back; tests that need committed data
(real Celery workers, concurrency) use the `committed` fixture, which truncates afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.engine import make_url

from signup import create_app
from signup.extensions import db
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import DATABASE_URL, REDIS_URL, TABLES, base_config


def _recreate_database(url: str) -> None:
    parsed = make_url(url)
    admin = parsed.set(database="postgres").render_as_string(hide_password=False)
    admin = admin.replace("postgresql+psycopg://", "postgresql://")
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.exit(
            f"PostgreSQL is not reachable at {parsed.host}:{parsed.port}: {exc}. "
            "Start it (see README, 'Tests') or set TEST_DATABASE_URL.",
            returncode=3,
        )
    with conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{parsed.database}"')


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    """The test Redis database, reachable or the run stops with a clear message."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.exit(f"Redis is not reachable at {REDIS_URL}: {exc}", returncode=3)
    client.flushdb()
    return client


@pytest.fixture(scope="session")
def app(redis_client: redis.Redis) -> Iterator[Flask]:
    """One app on a freshly created and migrated PostgreSQL database."""
    _recreate_database(DATABASE_URL)
    application = create_app(base_config())
    with application.app_context():
        upgrade()
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def db_session(app: Flask) -> Iterator[Any]:
    """Run the test inside a transaction that is rolled back; commits become savepoints.

    Flask-SQLAlchemy picks its bind from db.engines, so the open connection stands in for
    the engine there while the test runs.
    """
    with app.app_context():
        engines = db.engines
        engine = engines[None]
        connection = engine.connect()
        transaction = connection.begin()
        engines[None] = connection  # type: ignore[assignment]
        db.session.remove()
        saved = dict(db.session.session_factory.kw)
        db.session.configure(join_transaction_mode="create_savepoint")
        try:
            yield db.session
        finally:
            db.session.remove()
            db.session.session_factory.kw.clear()
            db.session.session_factory.kw.update(saved)
            engines[None] = engine
            transaction.rollback()
            connection.close()


@pytest.fixture
def committed(app: Flask) -> Iterator[Flask]:
    """Let the test commit for real (other processes must see it); truncate afterwards."""
    with app.app_context():
        yield app
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))


@pytest.fixture
def client(app: Flask, db_session: Any) -> FlaskClient:
    """A test client whose requests share the test's rolled-back transaction."""
    return app.test_client()


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """A fake Twilio REST API on a local port."""
    fake = FakeTwilio()
    fake.base_url = fake.start()  # type: ignore[attr-defined]
    yield fake
    fake.stop()
