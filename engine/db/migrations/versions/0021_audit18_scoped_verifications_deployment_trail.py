"""scoped verification jobs and the deployment trail (issue 18)

A verification job verifies one organisation's trails, or every trail; every deploy, activation,
migration request and approval is recorded in a hash-chained, authenticated deployment trail; a
rule-set version records the concern and intervention catalogue it is evaluated with.

Revision ID: 0021
Revises: 0017
Create Date: 2026-11-29 11:30:00
"""
from alembic import op
import sqlalchemy as sa



revision = '0021'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs recorded before: every trail (organisation NULL), readable by deployment-wide auditors only.
    with op.batch_alter_table('audit_verifications') as batch:
        batch.add_column(sa.Column('organisation', sa.String(length=64), nullable=True))
        batch.create_index('ix_audit_verifications_organisation', ['organisation'])
    op.create_table(
        'deployment_events',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('type', sa.String(length=40), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('prev_hash', sa.String(length=64), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('mac', sa.String(length=73), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('seq'),
    )
    # The head starts empty; the first event written is the baseline of what was deployed before the trail.
    op.create_table(
        'deployment_trail_head',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.execute("INSERT INTO deployment_trail_head (id, seq, hash) VALUES (1, 0, '" + "0" * 64 + "')")
    # Versions recorded before keep NULL: they are evaluated with the folder's catalogue, as they were; the
    # next deploy records the folder's rule text with its catalogue as a new, pending version.
    with op.batch_alter_table('rule_set_activations') as batch:
        batch.add_column(sa.Column('catalogue_version', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('catalogue_source', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('rule_set_activations') as batch:
        batch.drop_column('catalogue_source')
        batch.drop_column('catalogue_version')
    op.drop_table('deployment_trail_head')
    op.drop_table('deployment_events')
    with op.batch_alter_table('audit_verifications') as batch:
        batch.drop_index('ix_audit_verifications_organisation')
        batch.drop_column('organisation')
