"""The files a diagram may name (form schemas), confined to one bundle.

A diagram names other files by relative name (``formJsonSchemaFilename``). Those names are resolved
only inside the bundle the diagram came from: the uploaded files of a deployment, or the configured
pathways folder. Never the server's working directory, never through ``..``, an absolute path or a
symlink that leads out of the folder. A name that does not resolve inside the bundle reads as
missing, whatever is (or is not) outside it, so the answer reveals nothing about the server's disk.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

__all__ = ["MAX_BUNDLE_FILE_BYTES", "BundleFiles", "ChainedFiles", "FolderFiles", "MemoryFiles", "bundle_name"]

# Form schemas are small; a larger file is refused rather than read whole into memory.
MAX_BUNDLE_FILE_BYTES = 1024 * 1024


def bundle_name(base: str, name: str) -> str | None:
    """``name`` as written in the diagram at ``base``, as a name inside the bundle; None when unsafe.

    Unsafe: empty, absolute (``/x``, ``\\x``, ``C:x``), containing ``..``, a backslash or a NUL.
    """
    if not name or "\0" in name or "\\" in name or name.startswith("/") or ":" in name:
        return None
    if ".." in name.split("/"):
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(base), name))
    if joined.startswith(("../", "/")) or joined in ("..", "."):
        return None
    return joined


class BundleFiles(Protocol):
    """Where the files a diagram names are read from."""

    def read(self, name: str) -> bytes | None:
        """The content of ``name`` (a bundle name from :func:`bundle_name`), or None when it is not
        a readable file of this bundle (missing, outside, too large or unreadable: all alike)."""


class FolderFiles:
    """A folder on disk: only regular files whose real path stays inside the folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._real_root = root.resolve()

    def path_of(self, name: str) -> Path | None:
        """The file's path when ``name`` is a safe name that resolves to a regular file inside the root."""
        if bundle_name("", name) != name:
            return None
        path = self.root / name
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, a symlink loop
            return None
        if not real.is_relative_to(self._real_root) or not real.is_file():
            return None
        return path

    def read(self, name: str) -> bytes | None:
        path = self.path_of(name)
        if path is None:
            return None
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_BUNDLE_FILE_BYTES + 1)
        except OSError:
            return None
        return data if len(data) <= MAX_BUNDLE_FILE_BYTES else None

    def names(self, pattern: str) -> Iterator[str]:
        """Names of the files matching ``pattern`` (a glob, searched recursively) that stay inside."""
        for path in sorted(self.root.rglob(pattern)):
            name = path.relative_to(self.root).as_posix()
            if self.path_of(name) is not None:
                yield name


class MemoryFiles:
    """Files held in memory: an upload, or a stored pathway version's files."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = dict(files)

    def read(self, name: str) -> bytes | None:
        return self.files.get(name)


class ChainedFiles:
    """The first bundle that has the name: an upload first, then the pathways folder."""

    def __init__(self, *bundles: BundleFiles) -> None:
        self.bundles = bundles

    def read(self, name: str) -> bytes | None:
        for bundle in self.bundles:
            content = bundle.read(name)
            if content is not None:
                return content
        return None
