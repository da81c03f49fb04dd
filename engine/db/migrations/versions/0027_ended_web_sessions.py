"""ended_web_sessions: web sessions signed out before their cookie expired

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-30 06:40:00

The web session is a signed cookie with no server record: signing out cleared one browser's cookie,
and a copy taken earlier still worked until it expired. Each session now has a random id; signing
out records it here, and a request with a recorded id is signed out (api.web.auth). ``useless_after``
is when every copy of the cookie has expired anyway: the worker deletes the row then.

Sessions made before this revision have no id and are treated as signed out (users sign in once more).
"""
from alembic import op
import sqlalchemy as sa



revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ended_web_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('useless_after', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_ended_web_sessions_useless_after', 'ended_web_sessions', ['useless_after'])


def downgrade() -> None:
    op.drop_table('ended_web_sessions')
