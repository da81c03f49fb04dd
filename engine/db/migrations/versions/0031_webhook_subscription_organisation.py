"""webhook_subscriptions.organisation: a subscription is one organisation's, or the deployment's

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-30 12:00:00

Subscriptions were the deployment's: an admin whose token named one organisation listed, added and
removed every organisation's, and a subscription received the events of every organisation's
instances. Each now names the organisation it belongs to (it receives that organisation's events
only, and only that organisation's admins see it); NULL is the deployment's, which is what every
subscription stored before this revision stays (an admin of every organisation manages them).
Nothing is derived here, so the migration takes no time at any size.

Downgrading would make each organisation's subscription the deployment's, sent every organisation's
events: it stops them instead (removed now, their pending deliveries cancelled, rows kept), and an
admin of every organisation subscribes again what should go on.
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_subscriptions') as batch:
        batch.add_column(sa.Column('organisation', sa.String(length=64), nullable=True))


def downgrade() -> None:
    subscriptions = sa.table(
        'webhook_subscriptions',
        sa.column('id', sa.String()),
        sa.column('organisation', sa.String()),
        sa.column('removed_at', sa.DateTime(timezone=True)),  # as engine.db.models.UTCDateTime stores it
    )
    deliveries = sa.table(
        'webhook_deliveries',
        sa.column('subscription_id', sa.String()),
        sa.column('status', sa.String()),
        sa.column('lease_until', sa.DateTime(timezone=True)),
    )
    owned = sa.select(subscriptions.c.id).where(subscriptions.c.organisation.is_not(None))
    op.execute(
        deliveries.update()
        .where(deliveries.c.status == 'pending', deliveries.c.subscription_id.in_(owned))
        .values(status='cancelled', lease_until=None)
    )
    op.execute(
        subscriptions.update()
        .where(subscriptions.c.organisation.is_not(None), subscriptions.c.removed_at.is_(None))
        .values(removed_at=datetime.now(UTC))
    )
    with op.batch_alter_table('webhook_subscriptions') as batch:
        batch.drop_column('organisation')
