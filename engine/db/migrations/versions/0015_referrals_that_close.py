"""referrals that close: care plan item history, accept-by times, escalations (issue 14, point 2)

Revision ID: 0015
Revises: 0013
Create Date: 2026-11-29 08:30:00
"""
from alembic import op
import sqlalchemy as sa



revision = '0015'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('care_plan_items') as batch:
        batch.add_column(sa.Column('accept_by', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_care_plan_items_status_accept_by', 'care_plan_items', ['status', 'accept_by'])
    op.create_table(
        'care_plan_item_moves',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('item_id', sa.String(length=36), nullable=False),
        sa.Column('instance_id', sa.String(length=36), nullable=False),
        sa.Column('change', sa.String(length=20), nullable=False),
        sa.Column('from_status', sa.String(length=20), nullable=True),
        sa.Column('to_status', sa.String(length=20), nullable=False),
        sa.Column('from_urgency', sa.String(length=20), nullable=True),
        sa.Column('to_urgency', sa.String(length=20), nullable=True),
        sa.Column('reason', sa.String(length=64), nullable=True),
        sa.Column('evaluation_id', sa.String(length=36), nullable=True),
        sa.Column('rules', sa.Text(), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['care_plan_items.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_care_plan_item_moves_item_id', 'care_plan_item_moves', ['item_id'])
    op.create_table(
        'referral_escalations',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('instance_id', sa.String(length=36), nullable=False),
        sa.Column('item_id', sa.String(length=36), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('assignee', sa.String(length=64), nullable=True),
        sa.Column('accept_by', sa.DateTime(timezone=True), nullable=False),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('completed_by', sa.String(length=200), nullable=True),
        sa.Column('outcome', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['instance_id'], ['pathway_instances.id']),
        sa.ForeignKeyConstraint(['item_id'], ['care_plan_items.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_referral_escalations_instance_id', 'referral_escalations', ['instance_id'])
    op.create_index('ix_referral_escalations_item_id', 'referral_escalations', ['item_id'])
    op.create_index('ix_referral_escalations_status_opened_at', 'referral_escalations', ['status', 'opened_at'])


def downgrade() -> None:
    op.drop_table('referral_escalations')
    op.drop_table('care_plan_item_moves')
    op.drop_index('ix_care_plan_items_status_accept_by', table_name='care_plan_items')
    with op.batch_alter_table('care_plan_items') as batch:
        batch.drop_column('escalated_at')
        batch.drop_column('accept_by')
