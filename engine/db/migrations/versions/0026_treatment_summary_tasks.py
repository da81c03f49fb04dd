"""treatment_summaries.task_id: each awaited End of Treatment Summary keyed by the task that writes it

Revision ID: 0026
Revises: 0020
Create Date: 2026-11-29 16:50:00

An instance can wait for two summaries at once (the first-line summary still unwritten when a
recurrence's treatment ends), so a phase's row is keyed by its ``write_summary`` task's id
(engine.careplan.summaries). Existing rows stay valid:

* a row that is ``due`` while its instance waits for exactly one ``write_summary`` task (the
  instance's ready-task summary says so) is that task's row: its id is filled in here;
* every other row keeps NULL: a written or closed row needs no task any more, and a due row whose
  instance waits for two tasks is matched by the worker's scan, by its phase and end date, to one
  of them (engine.careplan.summaries, ``_match_legacy``).

The scan compares each waiting instance's due rows with its waiting tasks every worker turn, so the
index on ``instance_id`` becomes one on ``(instance_id, status)``: a planner given the choice between
the old index and ``(status, due_by)`` took the latter and read every due row per waiting instance.

(Revision id 0021 was already taken by the audit's scoped verifications when this was written.)
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0026'
down_revision = '0020'
branch_labels = None
depends_on = None

_WRITE_ELEMENT = 'write_summary'
_BATCH = 500


def upgrade() -> None:
    with op.batch_alter_table('treatment_summaries') as batch:
        batch.add_column(sa.Column('task_id', sa.String(length=36), nullable=True))
        batch.create_unique_constraint('uq_treatment_summaries_instance_id_task_id', ['instance_id', 'task_id'])
    op.create_index('ix_treatment_summaries_instance_id_status', 'treatment_summaries', ['instance_id', 'status'])
    op.drop_index('ix_treatment_summaries_instance_id', table_name='treatment_summaries')
    _backfill(op.get_bind())


def _backfill(bind: sa.engine.Connection) -> None:
    summaries = sa.table('treatment_summaries', sa.column('id', sa.String), sa.column('instance_id', sa.String),
                         sa.column('status', sa.String), sa.column('task_id', sa.String))
    instances = sa.table('pathway_instances', sa.column('id', sa.String), sa.column('ready_tasks', sa.Text))
    due = bind.execute(sa.select(summaries.c.id, instances.c.ready_tasks)
                       .join(instances, instances.c.id == summaries.c.instance_id)
                       .where(summaries.c.status == 'due').order_by(summaries.c.id)).all()
    updates = []
    for summary_id, ready_tasks in due:
        waiting = [task.get('id') for task in json.loads(ready_tasks or '[]')
                   if isinstance(task, dict) and task.get('element') == _WRITE_ELEMENT]
        if len(waiting) == 1 and isinstance(waiting[0], str):
            updates.append({'row': summary_id, 'task': waiting[0]})
    statement = summaries.update().where(summaries.c.id == sa.bindparam('row')).values(task_id=sa.bindparam('task'))
    for first in range(0, len(updates), _BATCH):
        bind.execute(statement, updates[first:first + _BATCH])


def downgrade() -> None:
    op.create_index('ix_treatment_summaries_instance_id', 'treatment_summaries', ['instance_id'])
    op.drop_index('ix_treatment_summaries_instance_id_status', table_name='treatment_summaries')
    with op.batch_alter_table('treatment_summaries') as batch:
        batch.drop_constraint('uq_treatment_summaries_instance_id_task_id', type_='unique')
        batch.drop_column('task_id')
