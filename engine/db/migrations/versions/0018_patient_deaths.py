"""patient_deaths: a recorded death stops every pathway of the patient and refuses new starts (issue 14)

Revision ID: 0018
Revises: 0011
Create Date: 2026-11-29 09:00:00
"""
from alembic import op
import sqlalchemy as sa



revision = '0018'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'patient_deaths',
        sa.Column('patient_ref', sa.String(length=64), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_by', sa.String(length=200), nullable=False),
        sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('withdrawn_by', sa.String(length=200), nullable=True),
        sa.Column('withdrawn_reason', sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint('patient_ref'),
    )


def downgrade() -> None:
    op.drop_table('patient_deaths')
