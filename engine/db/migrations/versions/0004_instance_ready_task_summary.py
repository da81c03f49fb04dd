"""pathway_instances.ready_tasks: the ready tasks as of the last save, for work lists

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 22:20:00

Existing rows keep NULL until their next step; work lists restore those instances as before.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pathway_instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ready_tasks', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pathway_instances', schema=None) as batch_op:
        batch_op.drop_column('ready_tasks')
