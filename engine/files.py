"""Reading a file an author or operator hands over, with a bound: a regular file of at most ``limit`` bytes.

A path in a pathways or rules folder, or given on the command line, may name a named pipe (opening it waits
for a writer), a device such as ``/dev/zero`` (reading it never ends) or a file of gigabytes (read whole
before any bound on its content applies). :func:`read_regular_file` refuses each before reading; the callers
turn the refusal into their own located problem (``engine.rules.yaml_source``, ``engine.pathways``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["MAX_YAML_BYTES", "NOT_REGULAR", "TOO_LARGE", "UNREADABLE", "FileRefusedError", "read_regular_file"]

# An author's YAML file (rules, catalogues, rule tests, scenarios, warning signs, the service directory). The
# largest bundled one, the rule set, is 118 KB: 4 MiB leaves room for thirty times that.
MAX_YAML_BYTES = 4 * 1024 * 1024


class FileRefusedError(Exception):
    """The file was not read: it cannot be opened, is not a regular file, or is over the limit. The message
    says which, in words an author can act on; it never holds the file's content. ``reason`` is one of
    :data:`UNREADABLE`, :data:`NOT_REGULAR`, :data:`TOO_LARGE`."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


UNREADABLE, NOT_REGULAR, TOO_LARGE = "unreadable", "not-regular", "too-large"


def read_regular_file(path: Path | str, limit: int) -> bytes:
    """The bytes of ``path`` when it is (or links to) a regular file of at most ``limit`` bytes.

    Raises:
        FileRefusedError: see the class.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: opening a named pipe waits for a writer
            raise FileRefusedError("not a regular file", NOT_REGULAR)
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # replaced since the check above
                raise FileRefusedError("not a regular file", NOT_REGULAR)
            data = handle.read(limit + 1)
    except OSError as exc:
        raise FileRefusedError(f"cannot read the file: {exc.strerror}", UNREADABLE) from exc
    if len(data) > limit:
        raise FileRefusedError(f"the file is over {_size(limit)}", TOO_LARGE)
    return data


def _size(limit: int) -> str:
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"
