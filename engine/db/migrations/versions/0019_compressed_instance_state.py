"""pathway_instances.state: compressed bytes instead of text (issue 19: at most 10 KB a state)

Revision ID: 0019
Revises: 0017
Create Date: 2026-11-29 12:00:00

Each state's JSON text is stored as a marker byte (0x01) and a zlib stream of its UTF-8 text, level 6
(``engine.db.stored_state``). The text itself is not changed, so the digests the event trail recorded
of it still match: ``carepath audit verify`` gives the same answer before and after.

The column's type changes first, each row's text becoming its UTF-8 bytes (which the engine reads
as they are: ``{`` marks uncompressed text); then the rows are compressed in place, 500 at a time
in id order. Downgrading inflates them back in place the same way, then changes the type back to
text; a value that cannot be inflated stops the downgrade, naming the instance, rather than losing
it. The format is written out here rather than imported, so that later changes to the engine never
change what this migration does.
"""
import zlib
from collections.abc import Callable

from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0017'
branch_labels = None
depends_on = None

_BATCH = 500
_ZLIB = b"\x01"


def _compressed(stored: bytes, instance_id: str) -> bytes | None:
    """The compressed form of an uncompressed value (None: it is compressed already)."""
    return _ZLIB + zlib.compress(stored, 6) if stored[:1] == b"{" else None


def _inflated(stored: bytes, instance_id: str) -> bytes | None:
    """The UTF-8 text of a compressed value (None: it is text already)."""
    if stored[:1] == b"{":
        return None
    if stored[:1] != _ZLIB:
        raise RuntimeError(f"instance {instance_id}: stored state in an unknown format; downgrade stopped")
    return zlib.decompress(stored[1:])


def _convert(convert: Callable[[bytes, str], bytes | None]) -> None:
    """Rewrite every row's state that ``convert`` changes, ``_BATCH`` rows at a time in id order."""
    connection = op.get_bind()
    table = sa.table('pathway_instances', sa.column('id', sa.String), sa.column('state', sa.LargeBinary))
    after = ""
    while True:
        rows = connection.execute(sa.select(table.c.id, table.c.state).where(table.c.id > after)
                                  .order_by(table.c.id).limit(_BATCH)).all()
        if not rows:
            return
        changed = [{'row_id': row_id, 'value': value} for row_id, stored in rows
                   if (value := convert(bytes(stored), row_id)) is not None]
        if changed:
            connection.execute(table.update().where(table.c.id == sa.bindparam('row_id'))
                               .values(state=sa.bindparam('value')), changed)
        after = rows[-1][0]


def upgrade() -> None:
    with op.batch_alter_table('pathway_instances', schema=None) as batch_op:
        batch_op.alter_column('state', existing_type=sa.Text(), type_=sa.LargeBinary(), existing_nullable=False,
                              postgresql_using="convert_to(state, 'UTF8')")
    _convert(_compressed)


def downgrade() -> None:
    _convert(_inflated)
    with op.batch_alter_table('pathway_instances', schema=None) as batch_op:
        batch_op.alter_column('state', existing_type=sa.LargeBinary(), type_=sa.Text(), existing_nullable=False,
                              postgresql_using="convert_from(state, 'UTF8')")
