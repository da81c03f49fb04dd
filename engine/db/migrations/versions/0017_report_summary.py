"""report summary: what the service insight reports aggregate, refreshed by the worker (issue 21, point 4)

Revision ID: 0017
Revises: 0014
Create Date: 2026-11-29 08:45:00
"""
from alembic import op
import sqlalchemy as sa



revision = '0017'
down_revision = '0014'
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _instance() -> sa.Column:
    return sa.Column('instance_id', sa.String(length=36), nullable=False)


def _to_instance() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(['instance_id'], ['pathway_instances.id'], ondelete='CASCADE')


def upgrade() -> None:
    op.create_table(
        'report_instances', _instance(),
        sa.Column('pathway_id', sa.String(length=200), nullable=False),
        sa.Column('event_seq', sa.Integer(), nullable=False),
        _when('refreshed_at', nullable=False),
        _to_instance(), sa.PrimaryKeyConstraint('instance_id'),
    )
    op.create_table(
        'report_measure_rows', _instance(),
        sa.Column('measure', sa.String(length=40), nullable=False),
        sa.Column('pathway_id', sa.String(length=200), nullable=False),
        _when('start_at', nullable=False),
        sa.Column('start_month', sa.String(length=7), nullable=False),
        _when('deadline_at'), _when('done_at'),
        _to_instance(), sa.PrimaryKeyConstraint('instance_id', 'measure'),
    )
    op.create_index('ix_report_measure_rows_measure_start_at', 'report_measure_rows', ['measure', 'start_at'])
    op.create_table(
        'report_items',
        sa.Column('item_id', sa.String(length=36), nullable=False), _instance(),
        sa.Column('pathway_id', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('code', sa.String(length=100), nullable=False),
        sa.Column('service', sa.String(length=100), nullable=True),
        sa.Column('urgency', sa.String(length=20), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        _when('proposed_at', nullable=False), _when('agreed_at'), _when('referred_at'),
        sa.Column('referred_week', sa.String(length=10), nullable=True),
        _when('accepted_at'), _when('first_contact_at'), _when('completed_at'), _when('answered_at'),
        sa.Column('answered_week', sa.String(length=10), nullable=True),
        _when('due_at'), _when('closed_at'),
        sa.Column('days_to_acceptance', sa.Float(), nullable=True),
        sa.Column('days_to_first_contact', sa.Float(), nullable=True),
        _to_instance(), sa.PrimaryKeyConstraint('item_id'),
    )
    op.create_index('ix_report_items_instance_id', 'report_items', ['instance_id'])
    op.create_index('ix_report_items_referred_at', 'report_items', ['referred_at'])
    op.create_index('ix_report_items_closed_at', 'report_items', ['closed_at'])
    op.create_table(
        'report_warning_signs', _instance(),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('pathway_id', sa.String(length=200), nullable=False),
        _when('reported_at', nullable=False), _when('triaged_at'),
        sa.Column('colour', sa.String(length=20), nullable=False),
        sa.Column('hours_to_triage', sa.Float(), nullable=True),
        _to_instance(), sa.PrimaryKeyConstraint('instance_id', 'n'),
    )
    op.create_index('ix_report_warning_signs_reported_at', 'report_warning_signs', ['reported_at'])


def downgrade() -> None:
    for table in ('report_warning_signs', 'report_items', 'report_measure_rows', 'report_instances'):
        op.drop_table(table)
