"""Indexes in due order: the ``?due_before=`` list and the timer worker's claim are index ranges

Revision ID: 0020
Revises: 0017
Create Date: 2026-11-29 11:20:00

A list of what falls due (``due_before``) is ordered by ``(next_due_at, id)``
(``engine.instances.queries``): ``(next_due_at, id)`` serves it alone, ``(status, next_due_at, id)``
with a status. The second also serves the timer worker's claim (running instances by due time), so
it replaces the index on ``(status, next_due_at)``.

On a large PostgreSQL database, create the indexes beforehand with ``CREATE INDEX CONCURRENTLY``
(the same names) to avoid blocking writes; this migration then skips the ones that exist.
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0022'
branch_labels = None
depends_on = None

_INDEXES = {
    'ix_pathway_instances_next_due_at_id': ['next_due_at', 'id'],
    'ix_pathway_instances_status_next_due_at_id': ['status', 'next_due_at', 'id'],
}


def _existing() -> set[str]:
    return {str(index['name']) for index in sa.inspect(op.get_bind()).get_indexes('pathway_instances')}


def upgrade() -> None:
    present = _existing()
    for name, columns in _INDEXES.items():
        if name not in present:
            op.create_index(name, 'pathway_instances', columns)
    if 'ix_pathway_instances_status_next_due_at' in present:
        op.drop_index('ix_pathway_instances_status_next_due_at', table_name='pathway_instances')


def downgrade() -> None:
    op.create_index('ix_pathway_instances_status_next_due_at', 'pathway_instances', ['status', 'next_due_at'])
    for name in _INDEXES:
        op.drop_index(name, table_name='pathway_instances')
