"""Stored workflow states compressed with a preset dictionary (marker 0x02): nothing to change on upgrade

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-30 13:00:00

From this revision the engine writes each state as marker 0x02 and a zlib stream compressed with the
preset dictionary ``engine/db/state_dictionary_1.txt`` (``engine.db.stored_state``), about a sixth
smaller than zlib alone; it reads 0x01 rows as before, so upgrading rewrites nothing and takes no time
at any size (each row is written in the new form at its next step).

The revision is here for the way back. A release before it cannot read a 0x02 row, so downgrading
rewrites every 0x02 row as 0x01 (the same text, zlib alone, level 6), 500 rows at a time in id order,
and a row that cannot be inflated stops the downgrade, naming the instance, rather than losing it.
Being a revision also takes processes of an older release out of rotation once the database is
upgraded (``/v1/ready`` answers 503 on a schema it does not know), so none of them meets a 0x02
row. The dictionary's bytes are checked against the SHA-256 they were frozen with: the text is
the file's, read by path rather than imported, so later changes to the engine never change what
this migration does.
"""
import hashlib
import zlib
from pathlib import Path

from alembic import op
import sqlalchemy as sa


revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None

_BATCH = 500
_DICTIONARY_FILE = Path(__file__).resolve().parents[2] / "state_dictionary_1.txt"
_DICTIONARY_SHA256 = "12c12797767437b86df1f69b966e79a8a4f49f30db781ec1a55cd609212c2ab6"


def upgrade() -> None:
    pass  # the engine reads both forms: see the module docstring


def downgrade() -> None:
    dictionary = _DICTIONARY_FILE.read_bytes()
    if hashlib.sha256(dictionary).hexdigest() != _DICTIONARY_SHA256:
        raise RuntimeError(f"{_DICTIONARY_FILE} is not the dictionary the states were written with; downgrade stopped")
    connection = op.get_bind()
    table = sa.table('pathway_instances', sa.column('id', sa.String), sa.column('state', sa.LargeBinary))
    after = ""
    while True:
        rows = connection.execute(sa.select(table.c.id, table.c.state).where(table.c.id > after)
                                  .order_by(table.c.id).limit(_BATCH)).all()
        if not rows:
            return
        changed = []
        for row_id, stored in rows:
            stored = bytes(stored)
            if stored[:1] != b"\x02":
                continue
            try:
                text = zlib.decompressobj(zdict=dictionary).decompress(stored[1:])
            except zlib.error:
                raise RuntimeError(f"instance {row_id}: stored state cannot be inflated; downgrade stopped") from None
            changed.append({'row_id': row_id, 'value': b"\x01" + zlib.compress(text, 6)})
        if changed:
            connection.execute(table.update().where(table.c.id == sa.bindparam('row_id'))
                               .values(state=sa.bindparam('value')), changed)
        after = rows[-1][0]
