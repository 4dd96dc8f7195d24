"""users.language: the admin's language per account (null: the browser's Accept-Language)

Revision ID: 7389016f57a6
Revises: 6d50aba21339
Create Date: 2026-12-04 17:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7389016f57a6'
down_revision = '6d50aba21339'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('language', sa.String(length=8), nullable=True))


def downgrade():
    with op.batch_alter_table('users') as batch:
        batch.drop_column('language')
