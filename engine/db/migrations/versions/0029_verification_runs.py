"""audit_verifications.run_id: the run that owns a verification job

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-30 09:30:00

A verification run that stalled (a hung database connection) and was taken over by a worker
(``claim_abandoned``) could still write afterwards: its progress, or its ``failed`` when it finally
gave up, overwrote the result of the run that took it over. Each run now takes the job with a token of
its own (``run_id``), a takeover clears it, and every write of a run is conditional on it: a run that
is no longer the owner stops. Rows from before this revision have none; a run still in progress from
before the upgrade loses its writes and is taken over as any abandoned job is.
"""
from alembic import op
import sqlalchemy as sa


revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_verifications') as batch:
        batch.add_column(sa.Column('run_id', sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('audit_verifications') as batch:
        batch.drop_column('run_id')
