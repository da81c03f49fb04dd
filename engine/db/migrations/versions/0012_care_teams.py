"""care teams: each instance's organisation and care team, tokens' scope, break-glass in the access log

Revision ID: 0012
Revises: 0015
Create Date: 2026-11-29 08:40:00

Instances started before care teams existed are placed in CAREPATH_DEFAULT_ORGANISATION and
CAREPATH_DEFAULT_CARE_TEAM when they are set at upgrade time, else in organisation ``local``, team
``general`` (the development defaults, engine.settings.Settings.care_team_default); move them with
``PUT /v1/instances/<id>/care-team``. Existing API tokens keep NULL organisation: unscoped, as before.
"""
import os

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    organisation = os.environ.get('CAREPATH_DEFAULT_ORGANISATION', '').strip() or 'local'
    care_team = os.environ.get('CAREPATH_DEFAULT_CARE_TEAM', '').strip() or 'general'
    # NOT NULL with the placement of existing rows as the default (SQLite adds such a column in place,
    # without rebuilding the table and its partial index); PostgreSQL then forgets the default, so an
    # instance is never placed without the engine naming its team.
    with op.batch_alter_table('pathway_instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('organisation', sa.String(length=64), nullable=False,
                                      server_default=organisation[:64]))
        batch_op.add_column(sa.Column('care_team', sa.String(length=64), nullable=False,
                                      server_default=care_team[:64]))
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('pathway_instances', 'organisation', server_default=None)
        op.alter_column('pathway_instances', 'care_team', server_default=None)
    with op.batch_alter_table('pathway_instances', schema=None) as batch_op:
        batch_op.create_index('ix_pathway_instances_organisation_created_at_id',
                              ['organisation', 'created_at', 'id'])
        batch_op.create_index('ix_pathway_instances_org_team_created_at_id',
                              ['organisation', 'care_team', 'created_at', 'id'])
        batch_op.create_index('ix_pathway_instances_org_team_status_created_at_id',
                              ['organisation', 'care_team', 'status', 'created_at', 'id'])
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('organisation', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('teams', sa.Text(), nullable=True))
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('organisation', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('break_glass', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('break_glass_reason', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('break_glass_note', sa.String(length=500), nullable=True))
        batch_op.create_index('ix_access_log_organisation_at', ['organisation', 'at'])
        batch_op.create_index('ix_access_log_break_glass_at', ['break_glass', 'at'])


def downgrade() -> None:
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_index('ix_access_log_break_glass_at')
        batch_op.drop_index('ix_access_log_organisation_at')
        batch_op.drop_column('break_glass_note')
        batch_op.drop_column('break_glass_reason')
        batch_op.drop_column('break_glass')
        batch_op.drop_column('organisation')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('teams')
        batch_op.drop_column('organisation')
    with op.batch_alter_table('pathway_instances', schema=None) as batch_op:
        batch_op.drop_index('ix_pathway_instances_org_team_status_created_at_id')
        batch_op.drop_index('ix_pathway_instances_org_team_created_at_id')
        batch_op.drop_index('ix_pathway_instances_organisation_created_at_id')
        batch_op.drop_column('care_team')
        batch_op.drop_column('organisation')
