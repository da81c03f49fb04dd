"""How an instance's workflow state is stored: compressed bytes with a format marker, bounded on reading.

The state is JSON text (``engine.spiff.serializer.dump_state``: 40-80 KB for a breast pathway while it
runs). Stored as it is, it missed the 10 KB a stored state may take (issue 19); zlib at level 6 takes
it to about a tenth in 1-2 ms, and inflating it back takes a fifth of a millisecond. zlib is the
standard library's (Python 3.11 has no zstd; LZMA gave a quarter less for ten times the time).

The first byte says how the rest is stored:

=========  ============================================================================================
byte       what follows
=========  ============================================================================================
``0x02``   a zlib stream of the state's UTF-8 text compressed with the preset dictionary
           ``state_dictionary_1.txt`` (RFC 1950's FDICT): what every state is written as
``0x01``   a zlib stream (RFC 1950, with its Adler-32 check) of the state's UTF-8 text (written before
           the dictionary; read as ever)
``{``      the UTF-8 text itself, uncompressed (JSON objects start with it, so no marker is needed)
=========  ============================================================================================

**The dictionary.** Each state is compressed on its own, so zlib started every one knowing nothing,
though every state repeats the same key names, task spec names and structure. The dictionary (32 KB of
pieces common to the bundled pathways' states, no task ids, times or patient values; built by
``bench/state_dictionary.py``, which also measures it) gives zlib those to start from: the largest
stored breast state went from 9.4-9.7 KB to about 7.9 KB, and a pathway whose states it was not built
from gains about as much (the same script, ``--held-out``). It is frozen: a state written with it can
only be inflated with exactly these bytes, so :data:`DICTIONARY_SHA256` is checked when this module
loads and a changed file refuses to start. A better dictionary is a new file and a new marker, and
this reader keeps both. Priming zlib with 32 KB costs 0.15 ms a state, so a primed compressor is
copied for each (0.04 ms more than zlib alone on the largest breast state).

What the event trail's digests cover is the text, not these bytes (``engine.audit.state_digest``):
trails written before the column was compressed still verify, and a change of compression never
looks like an edit. The bytes are sealed to that digest on the instance row (``state_mac``,
``engine.audit.TrailKey.state_mac``), so that verification need not inflate them; bytes rewritten
(by a migration of this format) no longer match their seal and are inflated and checked instead.

A stored value is not trusted to inflate to a sane size: a corrupt or hostile blob of a few
kilobytes can claim gigabytes. :func:`decode_state` stops at :data:`MAX_STATE_BYTES` and raises
:class:`UnreadableStateError` for anything it cannot read; :func:`encode_state` refuses to store a
state it would refuse to read. The messages name the reason only, never the content.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any

from sqlalchemy import LargeBinary
from sqlalchemy.types import TypeDecorator

__all__ = ["MAX_STATE_BYTES", "StoredState", "UnreadableStateError", "decode_state", "encode_state"]

ZLIB = 0x01
ZLIB_DICTIONARY = 0x02
_PLAIN = ord("{")
DICTIONARY_FILE = Path(__file__).with_name("state_dictionary_1.txt")
DICTIONARY_SHA256 = "12c12797767437b86df1f69b966e79a8a4f49f30db781ec1a55cd609212c2ab6"
LEVEL = 6  # level 1 left the largest breast state over 10 KB; level 9 saved 1 % more for twice the time
# The largest text a state may inflate to. The largest live breast state is about 80 KB; a loop of
# 1,000 review rounds without compaction was 1.2 MB (LIBRARY_NOTES). 16 MiB inflates in ~20 ms.
MAX_STATE_BYTES = 16 * 1024 * 1024


def _dictionary() -> bytes:
    found = DICTIONARY_FILE.read_bytes()
    if hashlib.sha256(found).hexdigest() != DICTIONARY_SHA256:
        raise RuntimeError(
            f"{DICTIONARY_FILE} is not the dictionary stored states were written with (SHA-256 differs): "
            "restore it from the release; states compressed with it cannot be read otherwise"
        )
    return found


DICTIONARY = _dictionary()
# Primed once, copied for each state (never used itself): copying is cheaper than priming again.
_PRIMED = zlib.compressobj(LEVEL, zdict=DICTIONARY)


class UnreadableStateError(ValueError):
    """A stored state that cannot be read: an unknown marker, a corrupt or truncated zlib stream,
    text that is not UTF-8, or more than :data:`MAX_STATE_BYTES` once inflated. Also raised by
    :func:`encode_state` for a state over that bound (it could not be read back)."""


def encode_state(text: str) -> bytes:
    """The bytes to store for a state's JSON text.

    Raises:
        UnreadableStateError: the text is over :data:`MAX_STATE_BYTES` in UTF-8.
    """
    raw = text.encode()
    if len(raw) > MAX_STATE_BYTES:
        raise UnreadableStateError(
            f"the workflow state is {len(raw)} bytes, over the {MAX_STATE_BYTES} a stored state may hold"
        )
    deflater = _PRIMED.copy()
    return bytes((ZLIB_DICTIONARY,)) + deflater.compress(raw) + deflater.flush()


def decode_state(stored: bytes | memoryview | str) -> str:
    """The JSON text of a stored state, inflating at most :data:`MAX_STATE_BYTES`. (SQLite hands back
    a value written as text, by hand or before the column was converted, as ``str``: it is read as its
    UTF-8 bytes, like any other.)

    Raises:
        UnreadableStateError: see the class.
    """
    data = stored.encode() if isinstance(stored, str) else bytes(stored)
    if not data:
        raise UnreadableStateError("the stored workflow state is empty")
    marker = data[0]
    if marker == _PLAIN:
        raw = data
        if len(raw) > MAX_STATE_BYTES:
            raise UnreadableStateError(f"the stored workflow state is over {MAX_STATE_BYTES} bytes")
    elif marker == ZLIB_DICTIONARY:
        raw = _inflate(data[1:], zlib.decompressobj(zdict=DICTIONARY))
    elif marker == ZLIB:
        raw = _inflate(data[1:], zlib.decompressobj())
    else:
        raise UnreadableStateError(f"the stored workflow state has an unknown format marker 0x{marker:02x}")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise UnreadableStateError("the stored workflow state is not UTF-8 text") from None


def _inflate(data: bytes, inflater: Any) -> bytes:
    try:
        raw = inflater.decompress(data, MAX_STATE_BYTES + 1)
    except zlib.error:
        raise UnreadableStateError(
            "the stored workflow state is corrupt (its compressed data does not inflate)"
        ) from None
    if len(raw) > MAX_STATE_BYTES or inflater.unconsumed_tail:
        raise UnreadableStateError(f"the stored workflow state inflates to more than {MAX_STATE_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        raise UnreadableStateError("the stored workflow state is corrupt (truncated, or bytes after its end)")
    return raw


class StoredState(TypeDecorator[str]):
    """The ``state`` column: text in Python, :func:`encode_state` bytes in the database.

    Statements written for the driver (``engine.instances.store``) and readers that must survive a
    corrupt value (``engine.audit``) read the bytes and call :func:`decode_state` themselves; through
    this type, a value that cannot be read raises :class:`UnreadableStateError`.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | bytes | None, dialect: Any) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value  # None, or bytes already encoded (a bulk copy of stored rows)
        return encode_state(value)

    def process_result_value(self, value: bytes | str | None, dialect: Any) -> str | None:
        return None if value is None else decode_state(value)
