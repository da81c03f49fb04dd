"""report_instances.deadlines: which referral timeframes an instance's summary was derived with

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-30 08:10:00

The reports' referral deadlines (``report_items.due_at``) were counted with fixed timeframes of the
report's own, while escalation used the deployment's (``CAREPATH_REFERRAL_TIMEFRAMES``,
``CAREPATH_TIME_ZONE``, ``CAREPATH_HOLIDAYS``). Both now use the deployment's. The summary records the
fingerprint of the timeframes it was derived with (``ReferralTimeframes.fingerprint``); an instance whose
fingerprint differs from the settings in force is derived again. Rows from before this revision have
none, so the whole summary is derived again once (the worker does it in rounds).
"""
from alembic import op
import sqlalchemy as sa


revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('report_instances') as batch:
        batch.add_column(sa.Column('deadlines', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('report_instances') as batch:
        batch.drop_column('deadlines')
