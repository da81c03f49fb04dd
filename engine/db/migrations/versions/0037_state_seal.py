"""pathway_instances.state_mac: the stored state sealed to its trail's digest, so verification need not inflate it

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-01 10:30:00

An instance's newest digest event records the SHA-256 of its state's text; checking it means inflating
every stored state, a third of a verification's time (issue 19). The writer, holding the trail key, now
also stores an HMAC binding the instance, that digest and the SHA-256 of the bytes written
(engine.audit.TrailKey.state_mac); verification takes bytes whose seal matches for the text. Existing rows
keep NULL: their states are checked by inflating them, as before, until their next step seals them. A
release before this one ignores the column.
"""
from alembic import op
import sqlalchemy as sa


revision = '0037'
down_revision = '0036'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pathway_instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state_mac', sa.String(length=73), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pathway_instances', schema=None) as batch_op:
        batch_op.drop_column('state_mac')
