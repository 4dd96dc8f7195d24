"""users.session_epoch: a session carries it; bumping it ends every copy of the session

Revision ID: 5c7a2e91f3d8
Revises: d41e7c9b2a60
Create Date: 2026-12-04 16:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5c7a2e91f3d8'
down_revision = 'd41e7c9b2a60'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(
            sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade():
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_epoch')
