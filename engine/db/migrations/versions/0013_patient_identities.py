"""patient_identities and api_tokens.patient_ref: patients signed in to their own records (issue 18.2)

Revision ID: 0013
Revises: 0018
Create Date: 2026-11-29 08:30:00

An OpenID Connect identity (issuer, subject) linked to a patient reference, and a patient's API token
naming its patient. Existing tokens keep NULL: they are staff or system tokens.
"""
from alembic import op
import sqlalchemy as sa



revision = '0013'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'patient_identities',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('issuer', sa.String(length=500), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('patient_ref', sa.String(length=64), nullable=False),
        sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('linked_by', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('issuer', 'subject'),
    )
    op.create_index('ix_patient_identities_patient_ref', 'patient_identities', ['patient_ref'])
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('patient_ref', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('patient_ref')
    op.drop_index('ix_patient_identities_patient_ref', table_name='patient_identities')
    op.drop_table('patient_identities')
