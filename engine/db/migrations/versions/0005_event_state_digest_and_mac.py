"""instance_events.state_digest and instance_events.mac: the trail authenticated by a key outside the database

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 03:30:00

Existing events keep NULL in both: they were written before states were digested and before a
trail key existed. ``carepath audit sign-existing`` authenticates them once their chains verify.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instance_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state_digest', sa.String(length=71), nullable=True))
        batch_op.add_column(sa.Column('mac', sa.String(length=73), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('instance_events', schema=None) as batch_op:
        batch_op.drop_column('mac')
        batch_op.drop_column('state_digest')
