"""scoped verification jobs (issue 18): a job verifies one organisation's trails, or every trail

Revision ID: 0021
Revises: 0017
Create Date: 2026-11-29 11:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0021'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs recorded before: every trail (organisation NULL), readable by deployment-wide auditors only.
    with op.batch_alter_table('audit_verifications') as batch:
        batch.add_column(sa.Column('organisation', sa.String(length=64), nullable=True))
        batch.create_index('ix_audit_verifications_organisation', ['organisation'])


def downgrade() -> None:
    with op.batch_alter_table('audit_verifications') as batch:
        batch.drop_index('ix_audit_verifications_organisation')
        batch.drop_column('organisation')
