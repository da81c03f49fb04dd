"""pathway_versions.start_schema, one active instance per patient and pathway, the sandbox clock

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 05:40:00

Existing versions keep NULL (no start schema: any start data). Existing instances are ``one_per_patient``,
except where a database already holds two or more unfinished instances of one pathway for one
patient: the oldest is held to the rule and the later ones keep running as if started where
concurrent instances are allowed (``one_per_patient`` false), so the upgrade never fails on them and
nothing a clinician is working on is stopped. Find them with
``SELECT id FROM pathway_instances WHERE NOT one_per_patient`` and cancel those started twice by mistake.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_ACTIVE = "one_per_patient AND (status = 'running' OR status = 'suspended' OR status = 'error')"
_UNFINISHED = "status IN ('running', 'suspended', 'error')"
_LATER_DUPLICATES = (
    f"UPDATE pathway_instances SET one_per_patient = false WHERE {_UNFINISHED} AND EXISTS ("
    f"SELECT 1 FROM pathway_instances older WHERE older.patient_ref = pathway_instances.patient_ref "
    f"AND older.pathway_id = pathway_instances.pathway_id AND older.{_UNFINISHED} "
    "AND (older.created_at < pathway_instances.created_at OR (older.created_at = pathway_instances.created_at "
    "AND older.id < pathway_instances.id)))")


def upgrade() -> None:
    with op.batch_alter_table('pathway_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('start_schema', sa.Text(), nullable=True))
    with op.batch_alter_table('pathway_instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('one_per_patient', sa.Boolean(), server_default=sa.text('true'), nullable=False))
    op.execute(_LATER_DUPLICATES)
    op.create_index('uq_pathway_instances_one_active', 'pathway_instances', ['patient_ref', 'pathway_id'],
                    unique=True, sqlite_where=sa.text(_ACTIVE), postgresql_where=sa.text(_ACTIVE))
    op.create_table(
        'sandbox_clock',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('offset_seconds', sa.Float(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('sandbox_clock')
    op.drop_index('uq_pathway_instances_one_active', table_name='pathway_instances')
    with op.batch_alter_table('pathway_instances', schema=None) as batch_op:
        batch_op.drop_column('one_per_patient')
    with op.batch_alter_table('pathway_versions', schema=None) as batch_op:
        batch_op.drop_column('start_schema')
