"""Each instance's rule evaluations numbered in the order its steps made them (rule_evaluations.ordinal)

Revision ID: 0033
Revises: 0032
Create Date: 2026-11-30 16:00:00

An assessment is compared with the patient's previous one (a concern that rose by 3 or more, or
reached 8, is a deterioration, and the needs are assessed again two weeks later). "Previous" was the
evaluation with the latest ``created_at``, ties broken by the evaluation's random id. Two
assessments with the same time (a clock that did not move between them, or hosts whose clocks
disagree by more than the time between two steps) were then ordered by chance, and a deterioration
could be found, or missed, by chance.

``ordinal`` is the evaluation's place among its instance's evaluations, from 1, written with the
row (the instance's steps are serialised by its version check, so the number is never taken twice
by steps that both commit). Evaluations made for no instance have none. Existing rows are numbered
per instance by ``created_at`` and then id, the order they were read in before; the index on
``(instance_id, ordinal)`` replaces the one on ``instance_id`` alone.
"""
from alembic import op
import sqlalchemy as sa


revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rule_evaluations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ordinal', sa.Integer(), nullable=True))
    # One statement, on both databases (SQLite >= 3.33 and PostgreSQL take UPDATE ... FROM).
    op.execute(
        "UPDATE rule_evaluations SET ordinal = numbered.n FROM ("
        " SELECT id, ROW_NUMBER() OVER (PARTITION BY instance_id ORDER BY created_at, id) AS n"
        " FROM rule_evaluations WHERE instance_id IS NOT NULL"
        ") AS numbered WHERE rule_evaluations.id = numbered.id"
    )
    with op.batch_alter_table('rule_evaluations', schema=None) as batch_op:
        batch_op.drop_index('ix_rule_evaluations_instance_id')
        batch_op.create_index('ix_rule_evaluations_instance_id_ordinal', ['instance_id', 'ordinal'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rule_evaluations', schema=None) as batch_op:
        batch_op.drop_index('ix_rule_evaluations_instance_id_ordinal')
        batch_op.create_index('ix_rule_evaluations_instance_id', ['instance_id'], unique=False)
        batch_op.drop_column('ordinal')
