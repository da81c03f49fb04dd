"""pathway_instances.pathway_check: the site a diagnosis names that is not the pathway's, until checked

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-01 01:30:00

A site's pathway started for a diagnosis naming another cancer site (the breast pathway for "Non-small cell
lung cancer") carries a warning until a clinician checks the pathway (engine.pathway_checks). The row keeps the
site named, so that a work list flags the patient's tasks without reading any workflow state. NULL: nothing to
check. Instances started before it have none: their diagnoses are not read again here (that needs their state).
"""
from alembic import op
import sqlalchemy as sa


revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pathway_instances', schema=None) as batch:
        batch.add_column(sa.Column('pathway_check', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pathway_instances', schema=None) as batch:
        batch.drop_column('pathway_check')
