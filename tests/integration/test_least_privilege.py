"""Least privilege: the web and workers' role cannot rewrite the ledger, notices, audit or schema.

Migrations run as the owner; the app logs in as a member of `signup_app` (made by migration
7c6a3c328582). These tests log in as such a member, over TCP with a password like production,
and check every table, trigger and function of the schema, then the app's normal work.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from psycopg import errors, sql
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from signup import create_app
from signup.calls.models import Call
from signup.extensions import db
from signup.messaging.models import Message
from signup.volunteers.models import ConsentEvent, Volunteer
from tests.helpers import DATABASE_URL, base_config, call_params, post_signed, twilio_sid
from tests.integration.factories import NUMBER, OPTOUT, campaign

ROOT = Path(__file__).resolve().parents[2]
INIT_SCRIPT = ROOT / "scripts" / "postgres-app-role.sh"
APP_ROLE = "signup_app"
APP_TABLE_RIGHTS = {"SELECT", "INSERT", "UPDATE", "DELETE"}
# Where the app may do less than read and write: the append-only ledger, the consent notices
# it points to, the audit log, the schema version.
NARROWER = {
    "consent_events": {"SELECT", "INSERT"},
    "campaign_notices": {"SELECT", "INSERT"},
    "audit_log": {"SELECT", "INSERT"},
    "alembic_version": {"SELECT"},
}
# Columns the app may UPDATE where it may not update the whole row (column privileges):
# an export's row count when it ends, and erasure scrubbing a person's traces from the detail.
UPDATABLE_COLUMNS = {"audit_log": {"row_count", "detail"}}
EVERY_RIGHT = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def _libpq(url: str) -> str:
    return make_url(url).render_as_string(hide_password=False).replace("+psycopg", "")


@pytest.fixture(scope="module")
def login_url(app: Flask) -> Iterator[str]:
    """A LOGIN role in signup_app with a password, as an operator makes it; dropped after."""
    owner = make_url(DATABASE_URL)
    name = f"{owner.database}_login"  # unique per test database: roles are cluster-wide
    password = secrets.token_hex(16)
    with psycopg.connect(_libpq(DATABASE_URL), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(
            # ROLE CURRENT_USER: the owner may end this role's sessions (the webhook's writer).
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {} ROLE CURRENT_USER").format(
                sql.Identifier(name), sql.Literal(password), sql.Identifier(APP_ROLE)
            )
        )
    yield owner.set(username=name, password=password).render_as_string(hide_password=False)
    with psycopg.connect(_libpq(DATABASE_URL), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
        )
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _catalogue(query: str) -> list[tuple[str, ...]]:
    with psycopg.connect(_libpq(DATABASE_URL)) as conn:
        return [tuple(row) for row in conn.execute(query).fetchall()]


def _tables() -> list[str]:
    return [r[0] for r in _catalogue("SELECT tablename FROM pg_tables WHERE schemaname='public'")]


def _columns(table: str) -> list[str]:
    return [
        r[0]
        for r in _catalogue(
            "SELECT column_name FROM information_schema.columns"  # noqa: S608 (a catalogue name)
            f" WHERE table_schema = 'public' AND table_name = '{table}'"
        )
    ]


def _triggers() -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in _catalogue(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND NOT t.tgisinternal"
        )
    ]


def _functions() -> list[str]:
    return [
        r[0]
        for r in _catalogue(
            "SELECT p.oid::regprocedure::text FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
        )
    ]


def _forbidden_statements() -> list[str]:
    """Every way to rewrite the ledger or the schema, for every table, trigger and function."""
    tables, triggers = _tables(), _triggers()
    assert ("consent_events", "consent_events_append_only") in triggers
    statements = ["UPDATE campaign_notices SET text = 'TAMPERED'"]
    for table, rights in NARROWER.items():
        if "DELETE" not in rights:
            statements.append(f'DELETE FROM "{table}"')  # noqa: S608 (names from the catalogue)
        allowed = UPDATABLE_COLUMNS.get(table, set())
        statements += [
            f'UPDATE "{table}" SET "{column}" = "{column}"'  # noqa: S608 (names from the catalogue)
            for column in _columns(table)
            if column not in allowed
        ]
    for table in tables:
        statements += [
            f'TRUNCATE "{table}"',
            f'ALTER TABLE "{table}" ADD COLUMN intruder integer',
            f'ALTER TABLE "{table}" DISABLE TRIGGER ALL',
            f'DROP TABLE "{table}" CASCADE',
            f'CREATE TRIGGER intruder BEFORE INSERT ON "{table}"'
            " FOR EACH ROW EXECUTE FUNCTION consent_events_append_only()",
        ]
    for table, trigger in triggers:
        statements += [
            f'ALTER TABLE "{table}" DISABLE TRIGGER "{trigger}"',
            f'DROP TRIGGER "{trigger}" ON "{table}"',
        ]
    statements += [f"DROP FUNCTION {function}" for function in _functions()]
    statements += [
        "CREATE TABLE intruder (id integer)",
        "CREATE FUNCTION intruder() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
        "SET session_replication_role = replica",  # would silence every trigger
        f"GRANT {APP_ROLE} TO CURRENT_USER",
    ]
    return statements


def test_the_app_role_is_refused_every_rewrite_of_the_ledger_and_schema(login_url: str) -> None:
    refused = []
    with psycopg.connect(_libpq(login_url), autocommit=True) as conn:
        for statement in _forbidden_statements():
            try:
                with conn.transaction():
                    conn.execute(statement)
            except (errors.InsufficientPrivilege, errors.InvalidGrantOperation):
                refused.append(statement)
            else:
                pytest.fail(f"the app's role was allowed: {statement}")
    assert len(refused) > 50


def test_the_app_role_has_exactly_its_rights_on_every_table(app: Flask) -> None:
    """Read and write, never TRUNCATE/REFERENCES/TRIGGER; less on the ledger and the version."""
    for table in _tables():
        query = f"SELECT has_table_privilege('{APP_ROLE}', '\"{table}\"', '{{}}')"
        held = {right for right in EVERY_RIGHT if _catalogue(query.format(right))[0][0]}
        assert held == NARROWER.get(table, APP_TABLE_RIGHTS), table


def test_the_app_role_may_update_exactly_its_columns(app: Flask) -> None:
    """Every column of every table: UPDATE where the table allows it, or the column is listed."""
    for table in _tables():
        whole = "UPDATE" in NARROWER.get(table, APP_TABLE_RIGHTS)
        for column in _columns(table):
            query = (
                f"SELECT has_column_privilege('{APP_ROLE}', '\"{table}\"', '{column}', 'UPDATE')"
            )
            expected = whole or column in UPDATABLE_COLUMNS.get(table, set())
            assert _catalogue(query)[0][0] == expected, (table, column)


def test_a_table_a_later_migration_creates_gets_the_same_rights(app: Flask) -> None:
    """Default privileges: the owner's next table is readable and writable by the app at once."""
    with psycopg.connect(_libpq(DATABASE_URL)) as conn:
        conn.execute("CREATE TABLE later_table (id serial PRIMARY KEY)")
        rights = conn.execute(
            "SELECT has_table_privilege(%s, 'later_table', 'INSERT'),"
            " has_table_privilege(%s, 'later_table', 'TRUNCATE'),"
            " has_sequence_privilege(%s, 'later_table_id_seq', 'USAGE')",
            (APP_ROLE, APP_ROLE, APP_ROLE),
        ).fetchone()
        conn.rollback()
    assert rights == (True, False, True)


@pytest.fixture
def as_app_role(committed: Flask, login_url: str) -> Iterator[Flask]:
    """An app logged in as the app's role, like web, worker and beat, on committed data."""
    settings = base_config(SQLALCHEMY_DATABASE_URI=login_url, WEBHOOK_AUTOCOMMIT=True)
    application = create_app(settings)
    with committed.app_context():
        campaign()  # made by an organiser's command; committed by the owner for the app to use
        db.session.commit()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_apps_work_succeeds_as_the_app_role(as_app_role: Flask, tmp_path: Path) -> None:
    """A call end to end (webhook, every beat task, processing, SMS), opt-out, export, erasure."""
    client = as_app_role.test_client()
    caller = "+919911278181"
    for label, to in (("CA1", NUMBER), ("CA2", OPTOUT)):
        params = call_params(twilio_sid(label), caller, to)
        response = post_signed(client, "/webhooks/twilio/voice", params)
        assert response.status_code == 200 and b"Reject" in response.data
    celery = as_app_role.extensions["celery"]
    for entry in celery.conf.beat_schedule.values():
        assert celery.tasks[entry["task"]].apply().successful(), entry["task"]
    with as_app_role.app_context():
        ids = list(db.session.scalars(select(Call.id).order_by(Call.id)))
        assert celery.tasks["signup.calls.tasks.process_calls"].apply(args=(ids,)).successful()
        message_ids = list(db.session.scalars(select(Message.id)))
        assert celery.tasks["signup.messaging.tasks.send_messages"].apply(args=(message_ids,))
        db.session.remove()
        assert [c.state for c in db.session.scalars(select(Call).order_by(Call.id))] == [
            "done",
            "done",
        ]
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 2
        # The opt-out came before the onboarding SMS went: only the confirmation is sent.
        assert {(m.kind, m.status) for m in db.session.scalars(select(Message))} == {
            ("onboarding", "failed"),
            ("optout_confirmation", "sent"),
        }
        db.session.rollback()
    runner = as_app_role.test_cli_runner()
    output = tmp_path / "volunteers.csv"
    exported = runner.invoke(args=["export", "volunteers", "--output", str(output)])
    assert exported.exit_code == 0, exported.output
    assert caller in output.read_text(encoding="utf-8-sig")
    erased = runner.invoke(args=["volunteer", "erase", caller])
    assert erased.exit_code == 0, erased.output
    with as_app_role.app_context():
        volunteer = db.session.scalars(select(Volunteer)).one()
        assert volunteer.status == "erased"
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 3


@pytest.mark.skipif(shutil.which("psql") is None, reason="needs psql, as the postgres image has")
def test_the_compose_init_script_makes_a_login_role_in_signup_app(app: Flask) -> None:
    """scripts/postgres-app-role.sh (docker-compose's postgres init), run twice as it may be."""
    owner = make_url(DATABASE_URL)
    user, password = f"{owner.database}_compose", secrets.token_hex(12)
    env = {
        **os.environ,
        "PGHOST": owner.host or "127.0.0.1",
        "PGPORT": str(owner.port or 5432),
        "PGPASSWORD": owner.password or "",
        "POSTGRES_USER": owner.username or "postgres",
        "POSTGRES_DB": owner.database or "",
        "POSTGRES_APP_USER": user,
        "POSTGRES_APP_PASSWORD": password,
    }
    try:
        for _ in range(2):
            subprocess.run(["bash", str(INIT_SCRIPT)], env=env, check=True)
        login = owner.set(username=user, password=password).render_as_string(hide_password=False)
        with psycopg.connect(_libpq(login)) as conn:
            member, superuser = conn.execute(
                "SELECT pg_has_role('signup_app', 'MEMBER'), usesuper FROM pg_user"
                " WHERE usename = current_user"
            ).fetchone() or (None, None)
        assert (member, superuser) == (True, False)
    finally:
        with psycopg.connect(_libpq(DATABASE_URL), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))
