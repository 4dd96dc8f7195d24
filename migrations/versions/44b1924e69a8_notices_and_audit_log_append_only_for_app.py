"""the app's role may not rewrite the consent notices or delete the audit log

Revision ID: 44b1924e69a8
Revises: 3e8d1f6a9b2c
Create Date: 2026-12-04 17:40:00

Consent points to a notice version: `campaign_notices` is insert-only for `signup_app` (the
app only ever adds a new version). The audit log is appended to and never deleted by the app;
it updates only `row_count` (an export's rows, when it ends) and `detail` (erasure scrubbing
a person's traces), so UPDATE is granted on those two columns alone. PostgreSQL only; the
downgrade restores the read-and-write rights of 7c6a3c328582.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '44b1924e69a8'
down_revision = '3e8d1f6a9b2c'
branch_labels = None
depends_on = None

APP_ROLE = "signup_app"

NARROW = (
    f"REVOKE UPDATE, DELETE ON campaign_notices FROM {APP_ROLE}",
    f"REVOKE UPDATE, DELETE ON audit_log FROM {APP_ROLE}",
    f"GRANT UPDATE (row_count, detail) ON audit_log TO {APP_ROLE}",
)

WIDEN = (
    f"REVOKE UPDATE (row_count, detail) ON audit_log FROM {APP_ROLE}",
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON campaign_notices, audit_log TO {APP_ROLE}",
)


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in NARROW:
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in WIDEN:
        op.execute(statement)
