"""search by the last digits of a number: a trigram index on volunteers.phone

Revision ID: 3e8d1f6a9b2c
Revises: 7389016f57a6
Create Date: 2026-12-04 17:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '3e8d1f6a9b2c'
down_revision = '7389016f57a6'
branch_labels = None
depends_on = None


def upgrade():
    # pg_trgm was created by cf66aee031c4 for the name search; SQLite gets a plain index.
    with op.batch_alter_table('volunteers', schema=None) as batch_op:
        batch_op.create_index('ix_volunteers_phone_trgm', ['phone'], unique=False, postgresql_using='gin', postgresql_ops={'phone': 'gin_trgm_ops'})


def downgrade():
    with op.batch_alter_table('volunteers', schema=None) as batch_op:
        batch_op.drop_index('ix_volunteers_phone_trgm', postgresql_using='gin', postgresql_ops={'phone': 'gin_trgm_ops'})
