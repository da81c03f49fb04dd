"""api_tokens.expires_at: an API token may be given a lifetime

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 05:30:00

Existing tokens keep NULL: valid until revoked, as they were when they were made.
"""
from alembic import op
import sqlalchemy as sa



revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
