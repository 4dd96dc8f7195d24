"""least privilege: the signup_app group role the web and workers run as

Revision ID: 7c6a3c328582
Revises: 5c7a2e91f3d8
Create Date: 2026-12-04 16:40:00

Migrations run as the role that owns the tables (the owner may ALTER, DROP, TRUNCATE and
disable triggers); the web, workers and beat log in as a role that is a member of the NOLOGIN
group role `signup_app` made here. It may read and write the tables, but on `consent_events`
only SELECT and INSERT (the ledger is append-only by privilege as well as by trigger), and on
`alembic_version` only SELECT; it owns nothing, so it can neither TRUNCATE, ALTER nor DROP a
table, nor disable or drop a trigger, nor create tables in the schema. Default privileges give
it the same rights on the tables and sequences later migrations (run by this owner) create.

Role names are cluster-wide: the role is created only when absent (concurrent test databases
may race for it) and never dropped by the downgrade, which revokes its rights in this database.
Operators create the LOGIN role: docs/deployment.md, "Database roles". PostgreSQL only.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '7c6a3c328582'
down_revision = '5c7a2e91f3d8'
branch_labels = None
depends_on = None

APP_ROLE = "signup_app"

CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database's migration created it at the same moment
END $$
"""

GRANTS = (
    f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}",
    # A non-owner cannot revoke on the schema: then a harmless warning. PostgreSQL 15+ does not
    # grant CREATE on public to PUBLIC anyway; older versions did, to every role.
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}",
    f"REVOKE UPDATE, DELETE ON consent_events FROM {APP_ROLE}",
    f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {APP_ROLE}",
    f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}",
    f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {APP_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public"
    f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}",
)

REVOKES = (
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {APP_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {APP_ROLE}",
    f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {APP_ROLE}",
    f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}",
    f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}",
    f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}",
)


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(CREATE_ROLE)
    for statement in GRANTS:
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in REVOKES:
        op.execute(statement)
