"""DATABASE_REPLICA_URL: the admin's list and dashboard read there; everything else stays put.

A second database, migrated like the primary, stands in for a streaming replica. It holds a
volunteer the primary lacks and lacks the primary's, so each page shows which one it read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg
import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from signup import create_app
from signup.admin import dashboard
from signup.admin.access import Access
from signup.config import ConfigError
from signup.database import reads
from signup.extensions import db
from signup.users.models import Role
from signup.users.services import create_user
from signup.volunteers.models import Volunteer
from tests.conftest import _recreate_database
from tests.helpers import DATABASE_URL, TABLES, base_config
from tests.integration.admin_helpers import PASSWORD, as_user

ON_PRIMARY, ON_REPLICA, ALSO_ON_REPLICA = "+919911200001", "+919911200002", "+919911200003"
REPLICA_URL = (
    make_url(DATABASE_URL)
    .set(database=f"{make_url(DATABASE_URL).database}_replica")
    .render_as_string(hide_password=False)
)


def _admin_url(url: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", database="postgres")
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="module")
def replica(app: Flask) -> Iterator[str]:
    """The stand-in replica: created, migrated, and given one volunteer of its own."""
    _recreate_database(REPLICA_URL)
    own = create_app(base_config(SQLALCHEMY_DATABASE_URI=REPLICA_URL))
    with own.app_context():
        upgrade()
        db.session.add_all([Volunteer(phone=ON_REPLICA), Volunteer(phone=ALSO_ON_REPLICA)])
        db.session.commit()
        db.engine.dispose()
    yield REPLICA_URL
    with psycopg.connect(_admin_url(REPLICA_URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{make_url(REPLICA_URL).database}" WITH (FORCE)')


@pytest.fixture
def split_app(replica: str) -> Iterator[Flask]:
    """An app on the test database with the stand-in replica as DATABASE_REPLICA_URL."""
    split = create_app(base_config(DATABASE_REPLICA_URL=replica))
    with split.app_context():
        create_user(email="admin@x.org", role="admin", password=PASSWORD)
        db.session.add(Volunteer(phone=ON_PRIMARY))
        db.session.commit()
    yield split
    with split.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        for engine in db.engines.values():
            engine.dispose()


def test_the_list_and_dashboard_read_the_replica(split_app: Flask) -> None:
    client = as_user(split_app.test_client(), "admin@x.org")  # the login reads the primary
    listed = client.get("/admin/volunteers").get_data(as_text=True)
    assert ON_REPLICA in listed
    assert ON_PRIMARY not in listed
    board = client.get("/admin/")
    assert board.status_code == 200


def test_the_volunteer_page_and_actions_stay_on_the_primary(split_app: Flask) -> None:
    client = as_user(split_app.test_client(), "admin@x.org")
    with split_app.app_context():
        primary_id = db.session.scalar(select(Volunteer.id).where(Volunteer.phone == ON_PRIMARY))
    page = client.get(f"/admin/volunteers/{primary_id}")
    assert page.status_code == 200
    assert "9911200001" in page.get_data(as_text=True)


def test_reads_use_the_replica_engine_only_when_configured(split_app: Flask, app: Flask) -> None:
    with split_app.app_context():
        phones = set(reads.scalars(select(Volunteer.phone)))
        assert phones == {ON_REPLICA, ALSO_ON_REPLICA}
        board = dashboard.build(Access(user_id=1, role=Role.ADMIN), "Asia/Kolkata")
        assert dict(board.funnel)["Volunteers"] == 2
        assert db.session.scalar(select(func.count()).select_from(Volunteer)) == 1
        name = reads.scalar(text("SELECT current_setting('application_name')"))
        assert name == "missed-call-signup-replica"
        db.session.rollback()
    with app.app_context():
        assert "replica" not in db.engines  # no DATABASE_REPLICA_URL: reads are the session's


def test_a_replica_needs_postgresql() -> None:
    with pytest.raises(ConfigError):
        create_app(base_config(DATABASE_REPLICA_URL="sqlite:///replica.sqlite3"))


def test_a_replica_that_is_down_is_skipped_for_a_while(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """Reads fall back to the primary, and the dead replica is not dialled on every read."""
    dead = make_url(DATABASE_URL).set(port=1).render_as_string(hide_password=False)
    down = create_app(base_config(DATABASE_REPLICA_URL=dead))
    with down.app_context(), caplog.at_level(logging.WARNING):
        db.session.add(Volunteer(phone=ON_PRIMARY))
        db.session.flush()
        assert reads.scalar(select(func.count()).select_from(Volunteer)) == 0  # rolled back
        db.session.add(Volunteer(phone=ON_PRIMARY))
        db.session.flush()
        assert set(reads.scalars(select(Volunteer.phone))) == {ON_PRIMARY}
        db.session.rollback()
        for engine in db.engines.values():
            engine.dispose()
    assert [r.getMessage() for r in caplog.records].count("replica.unavailable") == 1
