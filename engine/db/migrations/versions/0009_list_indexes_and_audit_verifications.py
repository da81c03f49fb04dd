"""Indexes that match every list's filters and order, the trail's scan order, and audit verification jobs

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 05:40:00

Lists page by ``(created_at, id)`` after their filters (``engine.instances.queries``): each filter
combination gets an index ending in those two columns, so a page is one index range scan whatever
the caseload. The event trail is verified in one scan ordered by ``(instance_id, id)``: that index
replaces the one on ``instance_id`` alone. ``ready_task_elements`` lists the elements each
instance has a ready task at (filled here from the stored summaries), so the work list's
``?element=`` filter is an index range too. ``audit_verifications`` holds the verification jobs the
API starts and reports on (``engine.verifications``).

On a large PostgreSQL database, create the indexes beforehand with ``CREATE INDEX CONCURRENTLY``
(the same names) to avoid blocking writes; this migration then skips the ones that exist.
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_INSTANCE_INDEXES = {
    'ix_pathway_instances_created_at_id': ['created_at', 'id'],
    'ix_pathway_instances_status_created_at_id': ['status', 'created_at', 'id'],
    'ix_pathway_instances_pathway_id_status_created_at_id': ['pathway_id', 'status', 'created_at', 'id'],
    'ix_pathway_instances_patient_ref_created_at_id': ['patient_ref', 'created_at', 'id'],
}


def _existing(table: str) -> set[str]:
    return {str(index['name']) for index in sa.inspect(op.get_bind()).get_indexes(table)}


def upgrade() -> None:
    present = _existing('pathway_instances')
    for name, columns in _INSTANCE_INDEXES.items():
        if name not in present:
            op.create_index(name, 'pathway_instances', columns)
    if 'ix_instance_events_instance_id_id' not in _existing('instance_events'):
        op.create_index('ix_instance_events_instance_id_id', 'instance_events', ['instance_id', 'id'])
    op.drop_index('ix_instance_events_instance_id', table_name='instance_events')
    op.create_table(
        'ready_task_elements',
        sa.Column('instance_id', sa.String(length=36), nullable=False),
        sa.Column('element', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['pathway_instances.id'], ondelete='CASCADE',
                                name=op.f('fk_ready_task_elements_instance_id_pathway_instances')),
        sa.PrimaryKeyConstraint('instance_id', 'element', name=op.f('pk_ready_task_elements')),
    )
    op.create_index('ix_ready_task_elements_element_created_at_instance_id', 'ready_task_elements',
                    ['element', 'created_at', 'instance_id'])
    _fill_ready_task_elements()
    op.create_table(
        'audit_verifications',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('progress_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('instances_total', sa.Integer(), nullable=True),
        sa.Column('instances_checked', sa.Integer(), nullable=False),
        sa.Column('problem_count', sa.Integer(), nullable=False),
        sa.Column('problems', sa.Text(), nullable=False),
        sa.Column('failure', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_verifications')),
    )
    op.create_index('ix_audit_verifications_requested_at', 'audit_verifications', ['requested_at'])


def _fill_ready_task_elements(batch: int = 5000) -> None:
    """One row per (instance, element) of every stored ready-task summary, read in pages by id."""
    connection = op.get_bind()
    instances = sa.table('pathway_instances', sa.column('id', sa.String), sa.column('created_at', sa.DateTime),
                         sa.column('ready_tasks', sa.Text))
    elements = sa.table('ready_task_elements', sa.column('instance_id', sa.String), sa.column('element', sa.String),
                        sa.column('created_at', sa.DateTime))
    after = ''
    while True:
        rows = connection.execute(sa.select(instances.c.id, instances.c.created_at, instances.c.ready_tasks)
                                  .where(instances.c.id > after, instances.c.ready_tasks.is_not(None))
                                  .order_by(instances.c.id).limit(batch)).all()
        if not rows:
            return
        found = [{'instance_id': i, 'element': element, 'created_at': created}
                 for i, created, summary in rows
                 for element in sorted({task['element'] for task in json.loads(summary)})]
        if found:
            connection.execute(sa.insert(elements), found)
        after = rows[-1][0]


def downgrade() -> None:
    op.drop_index('ix_audit_verifications_requested_at', table_name='audit_verifications')
    op.drop_table('audit_verifications')
    op.drop_index('ix_ready_task_elements_element_created_at_instance_id', table_name='ready_task_elements')
    op.drop_table('ready_task_elements')
    op.create_index('ix_instance_events_instance_id', 'instance_events', ['instance_id'])
    op.drop_index('ix_instance_events_instance_id_id', table_name='instance_events')
    for name in _INSTANCE_INDEXES:
        op.drop_index(name, table_name='pathway_instances')
