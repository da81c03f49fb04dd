"""The rule-set registry: loads ``rules/*.yaml``, notices changed files, keeps old versions.

On every use the registry stats the rule file and the catalogue files; when a file's
(mtime_ns, ctime_ns, size, inode) changed it re-reads and re-hashes it, and a new hash means a
new version: loaded, checked, compiled and registered under its own durable-rules name. Old
versions stay registered and can still be evaluated by version (an evaluation names its
version). A rule file that no longer validates raises on use; earlier versions keep working.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import NotFoundError, Problem, RuleFileError
from engine.rules.assessment import Assessment
from engine.rules.catalogue import (
    CATALOGUE_FILES,
    GOVERNED_FILES,
    WARNING_SIGNS_FILE,
    Catalogue,
    load_catalogue,
    parse_catalogue,
)
from engine.rules.compiler import CompiledRuleset, compile_rule_file
from engine.rules.evaluator import Evaluation, RulesHost, evaluate
from engine.rules.loader import parse_rule_text
from engine.rules.warning_signs import warning_signs_of
from engine.rules.yaml_source import decode_yaml, read_author_bytes

__all__ = ["LoadedRuleset", "RuleSetRegistry"]

_Signature = tuple[int, int, int, int]


@dataclass(frozen=True)
class LoadedRuleset:
    """A compiled rule-file version and the catalogue version it was checked against."""

    compiled: CompiledRuleset
    catalogue: Catalogue

    @property
    def name(self) -> str:
        return self.compiled.name

    @property
    def version(self) -> str:
        return self.compiled.version


class RuleSetRegistry:
    """Rule sets by name (current file) and by version (every version seen by this process)."""

    def __init__(
        self, rules_dir: Path | str, catalogue_dir: Path | str | None = None, recheck_seconds: float = 0.0
    ) -> None:
        """``recheck_seconds``: how long a file's stat is trusted before it is looked at again
        (0: on every use). A server uses about a second: a changed file is then picked up within a
        second, without five ``stat`` calls on every evaluation."""
        self.recheck_seconds = recheck_seconds
        self._stats: dict[Path, tuple[float, _Signature]] = {}
        self._catalogue_checked_at = 0.0
        self.rules_dir = Path(rules_dir)
        self.catalogue_dir = Path(catalogue_dir) if catalogue_dir else self.rules_dir / "catalogues"
        self._lock = threading.RLock()
        self._signatures: dict[Path, _Signature] = {}
        self._current: dict[Path, LoadedRuleset] = {}  # rule file -> its current version
        self._paths: dict[str, Path] = {}  # ruleset name -> file
        self._versions: dict[tuple[str, str, str], LoadedRuleset] = {}  # (name, version, catalogue)
        self._catalogue: Catalogue | None = None
        self._catalogue_signature: tuple[_Signature, ...] | None = None
        self._pinned: dict[tuple[str, str], LoadedRuleset] = {}  # (name, release) -> as activated (four eyes)

    # --- lookups ---

    def names(self) -> list[str]:
        """The rule sets in the rules folder (loading any not seen yet).

        Raises:
            RuleFileError: when a rule file or the catalogue is invalid.
        """
        with self._lock:
            self._scan()
            return sorted(self._paths)

    def current(self, name: str) -> LoadedRuleset:
        """The current version of rule set ``name``, re-read if its file or the catalogue changed.

        Raises:
            NotFoundError: no rule file declares that rule set.
            RuleFileError: the file (or catalogue) is now invalid.
        """
        with self._lock:
            path = self._paths.get(name)
            if path is None:
                self._scan()
                path = self._paths.get(name)
                if path is None:
                    raise NotFoundError(f"no rule set named '{name}' in {self.rules_dir}")
            try:
                loaded = self._load_path(path)
            except NotFoundError:  # the file was removed or renamed
                self._scan()
                if name not in self._paths:
                    raise
                loaded = self._load_path(self._paths[name])
            if loaded.name != name:  # the file was edited to declare another name
                self._scan()
                return self.current(name)
            return loaded

    def by_version(self, name: str, version: str) -> LoadedRuleset:
        """A version seen by this process (or the current file if it has that version).

        Raises:
            NotFoundError: the version is unknown here (load it with :meth:`load_text`).
        """
        with self._lock:
            matches = [v for (n, ver, _c), v in self._versions.items() if n == name and ver == version]
            if not matches:
                try:
                    current = self.current(name)
                except RuleFileError:
                    current = None
                if current is not None and current.version == version:
                    return current
                raise NotFoundError(f"rule set '{name}' version {version[:12]} is not loaded")
            return matches[-1]

    def versions(self, name: str) -> list[str]:
        with self._lock:
            return [ver for (n, ver, _c) in self._versions if n == name]

    def load_text(self, text: str, file: str, catalogue_texts: dict[str, str] | None = None) -> LoadedRuleset:
        """Load a rule-file text (for example as stored with an old evaluation).

        Raises:
            RuleFileError: when the text or the catalogue texts are invalid.
        """
        catalogue = parse_catalogue(catalogue_texts, self.catalogue_dir) if catalogue_texts else self.catalogue()
        with self._lock:
            return self._compile(text, file, catalogue)

    def pinned(
        self, name: str, release: str, text: str, catalogue_version: str, catalogue_texts: dict[str, str]
    ) -> LoadedRuleset:
        """A rule-set version with the catalogue it was activated with (four eyes: the stored texts, not the
        folder's), loaded once per process.

        Raises:
            RuleFileError: the texts are invalid, or the catalogue's texts are not its version's.
        """
        with self._lock:
            loaded = self._pinned.get((name, release))
            if loaded is None:
                catalogue = _checked(parse_catalogue(catalogue_texts, self.catalogue_dir))
                if catalogue.version != catalogue_version:
                    raise RuleFileError(
                        f"the stored catalogue of rule set '{name}' is not version {catalogue_version[:12]}",
                        [Problem("the stored text changed", file="catalogues")],
                    )
                loaded = self._pinned[name, release] = self._compile(text, f"{name}.yaml", catalogue)
            return loaded

    def catalogue(self) -> Catalogue:
        """The current catalogue, re-read when one of its files changed.

        Raises:
            RuleFileError: when the catalogue is invalid.
        """
        with self._lock:
            now = time.monotonic()
            if self._catalogue is not None and now - self._catalogue_checked_at < self.recheck_seconds:
                return self._catalogue
            self._catalogue_checked_at = now
            signature = tuple(self._signature(self.catalogue_dir / n) for n in (*CATALOGUE_FILES, *GOVERNED_FILES))
            if self._catalogue is None or signature != self._catalogue_signature:
                catalogue = _checked(load_catalogue(self.catalogue_dir), self.catalogue_dir / WARNING_SIGNS_FILE)
                if self._catalogue is None or catalogue.version != self._catalogue.version:
                    self._catalogue = catalogue
                    self._current.clear()  # every rule file must be re-checked against it
                    self._signatures.clear()
                self._catalogue_signature = signature
            return self._catalogue

    # --- evaluation ---

    def evaluate(
        self,
        name: str,
        assessment: Assessment,
        *,
        version: str | None = None,
        evaluation_id: str | None = None,
        host: RulesHost | None = None,
    ) -> Evaluation:
        """Evaluate ``assessment`` with the current (or a given) version of rule set ``name``.

        Raises:
            NotFoundError, RuleFileError: see :meth:`current` and :meth:`by_version`.
            InvalidInputError: the assessment names unknown concerns.
            RuleEvaluationError: the rules engine failed.
        """
        loaded = self.by_version(name, version) if version else self.current(name)
        return evaluate(loaded.compiled, loaded.catalogue, assessment, evaluation_id=evaluation_id, host=host)

    # --- internals ---

    def _scan(self) -> None:
        try:
            self.catalogue()  # every rule set is checked against it: say so once, not once per rule file
        except RuleFileError as exc:
            raise RuleFileError(
                f"the catalogue in {self.catalogue_dir} could not be loaded, so no rule set was", exc.problems
            ) from None
        problems: list[Problem] = []
        found: dict[str, Path] = {}
        for path in sorted(self.rules_dir.glob("*.yaml")):
            try:
                loaded = self._load_path(path)
            except RuleFileError as exc:
                problems.extend(exc.problems)
                continue
            if loaded.name in found:
                problems.append(
                    Problem(f"rule set '{loaded.name}' is also declared in {found[loaded.name]}", file=str(path))
                )
            found[loaded.name] = path
        self._paths = found
        if problems and not found:
            raise RuleFileError("no rule set could be loaded", problems)

    def _load_path(self, path: Path) -> LoadedRuleset:
        catalogue = self.catalogue()
        signature = self._signature(path)
        if signature[2] < 0:  # the file is gone: look again for the rule set
            self._current.pop(path, None)
            raise NotFoundError(f"rule file {path} no longer exists")
        cached = self._current.get(path)
        if cached is not None and self._signatures.get(path) == signature:
            return cached
        data = read_author_bytes(path)  # a regular file, bounded (RuleFileError otherwise)
        version = hashlib.sha256(data).hexdigest()
        if cached is None or cached.version != version:
            cached = self._compile(decode_yaml(data, str(path)), str(path), catalogue)
            self._current[path] = cached
        self._signatures[path] = signature
        return cached

    def _signature(self, path: Path) -> _Signature:
        now = time.monotonic()
        known = self._stats.get(path)
        if known is not None and now - known[0] < self.recheck_seconds:
            return known[1]
        signature = _signature(path)
        self._stats[path] = (now, signature)
        return signature

    def _compile(self, text: str, file: str, catalogue: Catalogue) -> LoadedRuleset:
        rule_file = parse_rule_text(text, file, catalogue)
        key = (rule_file.name, rule_file.version, catalogue.version)
        if key not in self._versions:
            self._versions[key] = LoadedRuleset(compile_rule_file(rule_file), catalogue)
        return self._versions[key]


def _checked(catalogue: Catalogue, file: Path | None = None) -> Catalogue:
    """``catalogue``, once its warning signs (when it has them) parse: a version that holds broken ones is
    never used, so it can never be activated. ``file``: the warning signs file read from the folder, which
    the problems name as ``carepath validate`` does (and the parse is the one the triage's
    ``load_warning_signs`` of that file reuses); None for stored texts.

    Raises:
        RuleFileError: naming the warning signs file, line and column of every problem.
    """
    text = catalogue.sources.get(WARNING_SIGNS_FILE)
    if text is not None:
        if file is None:
            warning_signs_of(text)
        else:
            warning_signs_of(text, str(file))
    return catalogue


def _signature(path: Path) -> _Signature:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, -1, 0)
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
