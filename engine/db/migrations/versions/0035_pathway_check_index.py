"""A partial index of the instances waiting for a pathway check, in list order

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-01 02:00:00

``GET /v1/instances?pathway_check=pending`` and the web app's "Pathways to check" list the instances whose
diagnosis names another cancer site than their pathway's, not yet checked by a clinician
(engine.pathway_checks). They are few: a partial index on ``(created_at, id)`` where ``pathway_check`` is
set gives them in page order without reading the others. An instance that ended waits for no check: its
``pathway_check`` is cleared here, and by the engine as it ends one.
"""
from alembic import op
import sqlalchemy as sa


revision = '0035'
down_revision = '0034'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An instance that ended waits for no check (the engine clears it as it ends one from now on).
    op.execute("UPDATE pathway_instances SET pathway_check = NULL WHERE status IN ('completed', 'cancelled')")
    op.create_index(
        'ix_pathway_instances_pathway_check_created_at_id',
        'pathway_instances',
        ['created_at', 'id'],
        unique=False,
        sqlite_where=sa.text('pathway_check IS NOT NULL'),
        postgresql_where=sa.text('pathway_check IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index('ix_pathway_instances_pathway_check_created_at_id', table_name='pathway_instances')
