"""Alembic migrations are the schema of record: they must match the models exactly."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade

from signup import create_app
from signup.extensions import db
from tests.helpers import base_config


def _differences(app: Flask) -> list[object]:
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, db.metadata))


def test_postgres_schema_from_migrations_matches_models(app: Flask) -> None:
    assert _differences(app) == []


def test_sqlite_upgrade_downgrade_and_match(tmp_path: Path) -> None:
    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'm.sqlite3'}"))
    with app.app_context():
        upgrade()
        assert _differences(app) == []
        downgrade(revision="base")
        upgrade()
    assert _differences(app) == []
