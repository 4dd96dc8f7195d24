"""imports read by a task: the upload's bytes, status, progress and one-line error

Revision ID: 6d50aba21339
Revises: 7c6a3c328582
Create Date: 2026-12-04 17:00:00

Uploaded lists are no longer parsed in the web request: the bytes are stored here and the
import task reads them (signup/admin/imports.py). Batches already stored were read at upload,
so they are `ready`.
"""
from alembic import op
import sqlalchemy as sa

import signup.database


# revision identifiers, used by Alembic.
revision = '6d50aba21339'
down_revision = '7c6a3c328582'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('imports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='ready', nullable=False))
        batch_op.add_column(sa.Column('error', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('upload', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('size_bytes', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('rows_read', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('rows_total', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reading_since', signup.database.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('imports', schema=None) as batch_op:
        batch_op.drop_column('reading_since')
        batch_op.drop_column('rows_total')
        batch_op.drop_column('rows_read')
        batch_op.drop_column('size_bytes')
        batch_op.drop_column('upload')
        batch_op.drop_column('error')
        batch_op.drop_column('status')
