"""treatment_summaries: one End of Treatment Summary per phase of care, due 6 weeks after it ended,
with the overdue task the worker opens (issue 15, point 3)

Revision ID: 0022
Revises: 0017
Create Date: 2026-11-29 11:30:00
"""
from alembic import op
import sqlalchemy as sa



revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'treatment_summaries',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('instance_id', sa.String(length=36), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('phase', sa.String(length=40), nullable=False),
        sa.Column('ended_on', sa.Date(), nullable=False),
        sa.Column('due_by', sa.Date(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('written_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('written_by', sa.String(length=200), nullable=True),
        sa.Column('content', sa.Text(), nullable=True),
        sa.Column('overdue_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('assignee', sa.String(length=64), nullable=True),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['instance_id'], ['pathway_instances.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('instance_id', 'number', name='uq_treatment_summaries_instance_id_number'),
    )
    op.create_index('ix_treatment_summaries_instance_id', 'treatment_summaries', ['instance_id'])
    op.create_index('ix_treatment_summaries_status_due_by', 'treatment_summaries', ['status', 'due_by'])


def downgrade() -> None:
    op.drop_table('treatment_summaries')
