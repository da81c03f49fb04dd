"""upgrade_tasks: work an upgrade leaves for the workers; the diagnoses of instances started before 0034

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-01 04:00:00

Migration 0034 gave each instance a pathway check (engine.pathway_checks) from its start on, but left the
instances started before it without one: reading their diagnoses needs their workflow state, which a schema
migration does not read. This one leaves that reading to the workers, as the task ``read_diagnoses``: each
worker turn reads a batch of the instances that have not ended, in id order, until every one is read
(engine.pathway_checks.read_diagnoses; ``carepath pathways check-diagnoses`` does it at once). A database
with no instance that has not ended gets no task.
"""
from alembic import op
import sqlalchemy as sa

# Times as engine.db.models.UTCDateTime stores them (its impl): a migration never imports the models.


revision = '0036'
down_revision = '0035'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'upgrade_tasks',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('after_id', sa.String(length=36), nullable=True),
        sa.Column('lease_id', sa.String(length=36), nullable=True),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('read_count', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('asked_count', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_upgrade_tasks')),
    )
    # Only where there are instances to read: a new database has none, and its task would never be done
    # on a deployment that runs no worker.
    op.execute(
        "INSERT INTO upgrade_tasks (name, read_count, asked_count) SELECT 'read_diagnoses', 0, 0 WHERE EXISTS "
        "(SELECT 1 FROM pathway_instances WHERE status IN ('running', 'suspended', 'error'))"
    )


def downgrade() -> None:
    op.drop_table('upgrade_tasks')
