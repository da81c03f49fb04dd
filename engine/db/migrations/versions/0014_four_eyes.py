"""four eyes: pathway version activation, a token's holder, rule-set activations, migration requests (issue 18, point 4)

Versions deployed before four eyes count as activated when they were deployed, by
``system:before-four-eyes``: new instances keep starting on the version they started on before.

Revision ID: 0014
Revises: 0012
Create Date: 2026-11-29 08:30:00
"""
from alembic import op
import sqlalchemy as sa



revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pathway_versions') as batch:
        batch.add_column(sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('activated_by', sa.String(length=200), nullable=True))
    op.execute("UPDATE pathway_versions SET activated_at = deployed_at, activated_by = 'system:before-four-eyes'")
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('staff_id', sa.String(length=64), nullable=True))
    op.create_table(
        'rule_set_activations',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.Column('source', sa.Text(), nullable=False),
        sa.Column('deployed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('deployed_by', sa.String(length=200), nullable=False),
        sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('activated_by', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name', 'version'),
    )
    op.create_index('ix_rule_set_activations_name', 'rule_set_activations', ['name'])
    op.create_table(
        'migration_requests',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('pathway_id', sa.String(length=200), nullable=False),
        sa.Column('target_version', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('report', sa.Text(), nullable=False),
        sa.Column('approved_by', sa.String(length=200), nullable=True),
        sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('result', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_migration_requests_pathway_id', 'migration_requests', ['pathway_id'])
    op.create_index('ix_migration_requests_requested_at', 'migration_requests', ['requested_at'])


def downgrade() -> None:
    op.drop_table('migration_requests')
    op.drop_table('rule_set_activations')
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('staff_id')
    with op.batch_alter_table('pathway_versions') as batch:
        batch.drop_column('activated_by')
        batch.drop_column('activated_at')
