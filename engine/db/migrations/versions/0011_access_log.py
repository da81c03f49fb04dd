"""access_log: who looked at which patient's records, when and how (issue 18, point 3)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 05:45:00
"""
from alembic import op
import sqlalchemy as sa



revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'access_log',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('on_behalf_of', sa.String(length=64), nullable=True),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('route', sa.String(length=200), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('instance_id', sa.String(length=36), nullable=True),
        sa.Column('patient_ref', sa.String(length=64), nullable=True),
        sa.Column('request_id', sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_access_log_at', 'access_log', ['at'])
    op.create_index('ix_access_log_patient_ref_at', 'access_log', ['patient_ref', 'at'])
    op.create_index('ix_access_log_instance_id_at', 'access_log', ['instance_id', 'at'])
    op.create_index('ix_access_log_actor_at', 'access_log', ['actor', 'at'])


def downgrade() -> None:
    op.drop_table('access_log')
