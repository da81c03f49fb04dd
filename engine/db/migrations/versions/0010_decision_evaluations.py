"""decision_evaluations: every DMN decision table evaluated by a business rule task

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 05:40:00

A new table only; nothing existing changes.
"""
from alembic import op
import sqlalchemy as sa



revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'decision_evaluations',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('decision_id', sa.String(length=200), nullable=False),
        sa.Column('table_version', sa.String(length=64), nullable=False),
        sa.Column('file', sa.String(length=300), nullable=False),
        sa.Column('hit_policy', sa.String(length=20), nullable=False),
        sa.Column('pathway_id', sa.String(length=200), nullable=False),
        sa.Column('pathway_version', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('instance_id', sa.String(length=36), nullable=False),
        sa.Column('task_id', sa.String(length=36), nullable=False),
        sa.Column('element', sa.String(length=200), nullable=False),
        sa.Column('inputs', sa.JSON(), nullable=False),
        sa.Column('matched', sa.JSON(), nullable=False),
        sa.Column('outputs', sa.JSON(), nullable=False),
        sa.Column('misses', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('decision_evaluations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decision_evaluations_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_decision_evaluations_decision_id'), ['decision_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decision_evaluations_instance_id'), ['instance_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('decision_evaluations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decision_evaluations_instance_id'))
        batch_op.drop_index(batch_op.f('ix_decision_evaluations_decision_id'))
        batch_op.drop_index(batch_op.f('ix_decision_evaluations_created_at'))
    op.drop_table('decision_evaluations')
