"""Alembic migrations are the schema of record: they must match the models exactly."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade

from signup import create_app
from signup.database import EXPRESSION_INDEXES, STORED_CELLS, include_object
from signup.extensions import db
from tests.helpers import base_config


def _differences(app: Flask) -> list[object]:
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_object}
        )
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


def test_expression_indexes_exist_with_their_definition(app: Flask) -> None:
    """The indexes the metadata cannot describe are checked here instead."""
    from sqlalchemy import text

    with app.app_context(), db.engine.connect() as conn:
        found = dict(
            conn.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'volunteers'")
            ).all()
        )
    assert set(found) >= EXPRESSION_INDEXES
    definition = found["ix_volunteers_last_call_sort"]
    assert "COALESCE(last_call_at, '1970-01-01 00:00:00+00'::timestamp with time zone)" in (
        definition
    ) and definition.endswith(", id)")
    assert "gin (name gin_trgm_ops)" in found["ix_volunteers_name_trgm"]


def test_stored_export_cells_are_generated_columns(app: Flask) -> None:
    """The columns the model leaves out are checked here: PostgreSQL writes them itself."""
    from sqlalchemy import text

    with app.app_context(), db.engine.connect() as conn:
        found = dict(
            conn.execute(
                text(
                    "SELECT column_name, generation_expression FROM information_schema.columns"
                    " WHERE table_name = 'volunteers' AND is_generated = 'ALWAYS'"
                )
            ).all()
        )
    assert set(found) == STORED_CELLS
    assert "signup_csv_text(" in found["csv_head"]
    assert "signup_csv_tail(" in found["csv_tail"]
