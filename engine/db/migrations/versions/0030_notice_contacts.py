"""pathway_instances.notice_contacts: what a listed checklist's 24-hour line is chosen by

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-30 10:10:00

A needs checklist's form carries a safety notice filled with its own patient's 24-hour line (their
health system's, a child's treatment centre's). The task list filled it by restoring each listed
instance with such a task, which a list must not do (issue 19: no workflow state fetched for lists).
Each save now keeps the few values the line is chosen by (``engine.spiff.workflows.notice_contacts``)
beside the ready-task summary. Rows saved before this revision have none and are read as before until
their next step; nothing is derived here, so the migration takes no time at any size.
"""
from alembic import op
import sqlalchemy as sa


revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pathway_instances') as batch:
        batch.add_column(sa.Column('notice_contacts', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pathway_instances') as batch:
        batch.drop_column('notice_contacts')
