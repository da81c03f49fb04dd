"""The files a diagram may name (form schemas, decision tables), confined to one bundle; and
reading a whole bundle from a folder or a zip archive.

A diagram names other files by relative name (``formJsonSchemaFilename``). Those names are resolved
only inside the bundle the diagram came from: the uploaded files of a deployment, or the configured
pathways folder. Never the server's working directory, never through ``..``, an absolute path or a
symlink that leads out of the folder. A name that does not resolve inside the bundle reads as
missing, whatever is (or is not) outside it, so the answer reveals nothing about the server's disk.

A pathway is deployed as one bundle (:func:`read_bundle_zip`, :func:`read_bundle_folder`): its
diagrams (``.bpmn``), forms (``.json``) and decision tables (``.dmn``). Archives come from authors
and API clients, so reading one is bounded before anything is decompressed: at most
:data:`MAX_BUNDLE_FILES` entries, :data:`MAX_BUNDLE_FILE_BYTES` per file and
:data:`MAX_BUNDLE_BYTES` in all (counted as bytes come out, not as the archive claims), and a
compression ratio no real diagram reaches (zip bombs). Entries with an absolute name, ``..``, a
backslash or a symlink are refused, never skipped quietly.
"""

from __future__ import annotations

import fnmatch
import io
import posixpath
import stat
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engine.errors import InvalidInputError, Problem
from engine.files import TOO_LARGE as OVER_LIMIT
from engine.files import FileRefusedError, read_regular_file

__all__ = [
    "BUNDLE_SUFFIXES",
    "MAX_BUNDLE_BYTES",
    "MAX_BUNDLE_FILES",
    "MAX_BUNDLE_FILE_BYTES",
    "MAX_COMPRESSION_RATIO",
    "TOO_LARGE",
    "Bundle",
    "BundleFiles",
    "ChainedFiles",
    "FolderFiles",
    "MemoryFiles",
    "bundle_name",
    "read_bundle_folder",
    "read_bundle_zip",
    "read_bundle_zip_file",
]

# Form schemas and diagrams are small; a larger file is refused rather than read whole into memory.
MAX_BUNDLE_FILE_BYTES = 1024 * 1024
# A diagnosis pathway, its shared sub-pathways, forms and decision tables: a few dozen files, a few MB.
MAX_BUNDLE_FILES = 200
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
# XML compresses about 10:1; a zip bomb by thousands to one.
MAX_COMPRESSION_RATIO = 200
BUNDLE_SUFFIXES = (".bpmn", ".dmn", ".json")
TOO_LARGE = "bundle-too-large"  # the Problem code of a bundle over a size bound (HTTP 413)


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

    def names(self, pattern: str) -> Iterator[str]:
        """The names of this bundle's files matching ``pattern`` (a glob; ``*`` crosses folders)."""


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
            return read_regular_file(path, MAX_BUNDLE_FILE_BYTES)
        except FileRefusedError:
            return None

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

    def names(self, pattern: str) -> Iterator[str]:
        return iter(sorted(name for name in self.files if fnmatch.fnmatch(name, pattern)))


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

    def names(self, pattern: str) -> Iterator[str]:
        return iter(sorted({name for bundle in self.bundles for name in bundle.names(pattern)}))


@dataclass(frozen=True)
class Bundle:
    """The files of a bundle (name -> content) and the names it held that are not pathway files
    (``ignored``: a README, an image; never read)."""

    files: dict[str, bytes]
    ignored: list[str] = field(default_factory=list)


def _refuse(message: str, name: str | None, code: str) -> InvalidInputError:
    return InvalidInputError(f"the bundle cannot be used: {message}", [Problem(message, file=name, code=code)])


def _entry_is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _common_folder(names: list[str]) -> str:
    """The one folder every name is inside (``pathway/`` when an author zipped the folder itself)."""
    firsts = {name.split("/", 1)[0] for name in names}
    if len(firsts) == 1 and all("/" in name for name in names):
        return next(iter(firsts)) + "/"
    return ""


def read_bundle_zip_file(path: Path) -> Bundle:
    """:func:`read_bundle_zip` of an archive on disk, read only when it is a regular file of at most
    :data:`MAX_BUNDLE_BYTES` (a named pipe or a device would be read forever, a huge file whole).

    Raises:
        InvalidInputError: as :func:`read_bundle_zip`; also an archive that is not a regular file or cannot
            be read (code ``bundle-entry``), or is too large (code :data:`TOO_LARGE`).
    """
    try:
        data = read_regular_file(path, MAX_BUNDLE_BYTES)
    except FileRefusedError as exc:
        code = TOO_LARGE if exc.reason == OVER_LIMIT else "bundle-entry"
        raise _refuse(str(exc).replace("the file", "the archive"), str(path), code) from exc
    return read_bundle_zip(data)


def read_bundle_zip(data: bytes) -> Bundle:
    """The pathway files of a zip archive (folder structure kept; one folder around everything is
    dropped, as when an author zips the pathway's folder).

    Raises:
        InvalidInputError: not a zip archive, an entry that is a symlink or has an unsafe name, a
            duplicate, an encrypted or undecodable entry (code ``bundle-entry``); more entries, bytes
            or compression than the bounds allow (code :data:`TOO_LARGE`), naming the entry.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        raise _refuse("not a zip archive", None, "bundle-entry") from None
    entries = _safe_entries(infos)
    prefix = _common_folder([info.filename for info in entries])
    files: dict[str, bytes] = {}
    ignored: list[str] = []
    total = 0
    for info in entries:
        name = info.filename[len(prefix) :]
        if name in files:
            raise _refuse("the archive holds this name twice", info.filename, "bundle-entry")
        if (
            not name.endswith(BUNDLE_SUFFIXES)
            or any(part.startswith(".") for part in name.split("/"))
            or name.startswith("__MACOSX/")
        ):
            ignored.append(name)
            continue
        if info.file_size > MAX_BUNDLE_FILE_BYTES:
            raise _refuse(f"the file is larger than {MAX_BUNDLE_FILE_BYTES} bytes", info.filename, TOO_LARGE)
        if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1) + 1024:
            raise _refuse("the entry is compressed beyond any pathway file (a zip bomb?)", info.filename, TOO_LARGE)
        content = _read_entry(archive, info)
        total += len(content)
        if total > MAX_BUNDLE_BYTES:
            raise _refuse(f"the files hold more than {MAX_BUNDLE_BYTES} bytes in all", info.filename, TOO_LARGE)
        files[name] = content
    return Bundle(files, ignored)


def _safe_entries(infos: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """The archive's file entries, once every entry is known to be safe to name.

    Raises: InvalidInputError for too many entries, a symlink or an unsafe name.
    """
    if len(infos) > MAX_BUNDLE_FILES:
        raise _refuse(f"more than {MAX_BUNDLE_FILES} entries", None, TOO_LARGE)
    for info in infos:
        name = info.filename
        if _entry_is_symlink(info):
            raise _refuse("the entry is a symlink: put the file itself in the bundle", name, "bundle-entry")
        if bundle_name("", name.rstrip("/")) != name.rstrip("/"):
            raise _refuse(
                "the entry's name is not a plain relative name (no absolute path, '..', backslash or drive)",
                name,
                "bundle-entry",
            )
    return [info for info in infos if not info.is_dir()]


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """At most MAX_BUNDLE_FILE_BYTES of the entry, whatever its header claims.

    Raises: InvalidInputError naming the entry.
    """
    try:
        with archive.open(info) as handle:
            content = handle.read(MAX_BUNDLE_FILE_BYTES + 1)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, zlib.error, EOFError, OSError, ValueError):
        # encrypted, an unsupported compression method, corrupt data or a CRC mismatch
        raise _refuse(
            "the entry cannot be read (encrypted, corrupt or an unsupported compression)", info.filename, "bundle-entry"
        ) from None
    if len(content) > MAX_BUNDLE_FILE_BYTES:
        raise _refuse(f"the file is larger than {MAX_BUNDLE_FILE_BYTES} bytes", info.filename, TOO_LARGE)
    return content


def read_bundle_folder(root: Path) -> Bundle:
    """The pathway files below a folder (only regular files that stay inside it; hidden ones skipped).

    Raises:
        InvalidInputError: more files or bytes than the bounds allow (code :data:`TOO_LARGE`), or a
            pathway file that cannot be read whole (code ``bundle-entry``).
    """
    folder = FolderFiles(root)
    files: dict[str, bytes] = {}
    ignored: list[str] = []
    total = 0
    for name in folder.names("*"):
        if any(part.startswith(".") for part in name.split("/")):
            continue
        if not name.endswith(BUNDLE_SUFFIXES):
            ignored.append(name)
            continue
        if len(files) >= MAX_BUNDLE_FILES:
            raise _refuse(f"more than {MAX_BUNDLE_FILES} pathway files", name, TOO_LARGE)
        content = folder.read(name)
        if content is None:
            raise _refuse(f"cannot be read, or larger than {MAX_BUNDLE_FILE_BYTES} bytes", name, "bundle-entry")
        total += len(content)
        if total > MAX_BUNDLE_BYTES:
            raise _refuse(f"the files hold more than {MAX_BUNDLE_BYTES} bytes in all", name, TOO_LARGE)
        files[name] = content
    return Bundle(files, ignored)
