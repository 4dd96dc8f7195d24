"""consent_events without a campaign: the withdrawal of someone who never joined one

An imported person (no subscription) who says STOP, or a person with recorded withdrawal
evidence who is imported afterwards, has a withdrawal but no campaign: the ledger keeps it with
campaign_id and notice_version null.

Revision ID: e5d2a15a351a
Revises: 44b1924e69a8
Create Date: 2026-12-04 17:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e5d2a15a351a'
down_revision = '44b1924e69a8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('consent_events') as batch:
        batch.alter_column('campaign_id', existing_type=sa.BigInteger(), nullable=True)
        batch.alter_column('notice_version', existing_type=sa.Integer(), nullable=True)


def downgrade():
    # The old schema cannot hold a campaign-less event, and the ledger is append-only (its
    # trigger refuses DELETE): refuse to go back while such rows exist, rather than lose them.
    kept = op.get_bind().execute(
        sa.text('SELECT count(*) FROM consent_events WHERE campaign_id IS NULL')
    ).scalar()
    if kept:
        raise RuntimeError(
            f"{kept} consent events have no campaign (imported people's withdrawals); "
            "the previous schema cannot hold them, and the ledger keeps every row"
        )
    with op.batch_alter_table('consent_events') as batch:
        batch.alter_column('notice_version', existing_type=sa.Integer(), nullable=False)
        batch.alter_column('campaign_id', existing_type=sa.BigInteger(), nullable=False)
