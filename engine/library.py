"""The library a server or worker starts with: the pathways and rule sets in its configured folders.

A deployment whose folders are missing or empty would otherwise serve no pathways and propose no
referrals without saying so (issue 22). :func:`require_library` refuses that unless the settings
allow an empty library (a fresh deployment that will upload its pathways), and
:meth:`Library.describe` is the line a server or worker logs at start: names and versions, never
patient data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.errors import RuleFileError
from engine.pathways.sources import PathwayLibrary, source_from_diagrams
from engine.pathways.versions import VersionInfo
from engine.rules.loader import file_version
from engine.rules.yaml_source import read_author_bytes
from engine.settings import Settings

__all__ = ["EmptyLibraryError", "Library", "read_library", "require_library"]

# A start-up listing reads every rule file: the C parser when PyYAML has it (a tenth of the time).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class EmptyLibraryError(ValueError):
    """Raised at start when the pathways or rules folder is missing or holds nothing.

    A configuration error, like :class:`~engine.settings.Settings`' ``ValueError``: no request can
    cause it, so it is not a :class:`~engine.errors.CarePathError` with an HTTP status.
    """


@dataclass(frozen=True)
class Library:
    """What the configured folders hold: pathway id -> version, rule set name -> version (SHA-256)."""

    pathways: dict[str, str]
    rule_sets: dict[str, str]

    def describe(self) -> str:
        """One line for the start-up log: each pathway and rule set with its short version."""

        def listed(kind: str, versions: dict[str, str]) -> str:
            names = ", ".join(f"{name} {version[:12]}" for name, version in sorted(versions.items()))
            return f"{len(versions)} {kind}{'' if len(versions) == 1 else 's'}" + (f" ({names})" if names else "")

        return f"{listed('pathway', self.pathways)}; {listed('rule set', self.rule_sets)}"


def read_library(settings: Settings, deployed: Iterable[VersionInfo] | None = None) -> Library:
    """The pathways and rule sets in the settings' folders.

    ``deployed``: what the server has just deployed from the pathways folder
    (:meth:`~engine.pathways.versions.PathwayCatalog.sync_library`); without it the folder is read.
    Rule sets are named by each file's ``ruleset:`` field and versioned by the file's SHA-256, as the
    rule registry versions them; their rules are checked when first used, not here.

    Raises:
        DiagramError: a diagram in the pathways folder cannot be read (only when ``deployed`` is None).
    """
    if deployed is None:
        library = PathwayLibrary(settings.pathways_dir)
        diagrams = library.diagrams()
        pathways = {pid: source_from_diagrams(pid, diagrams).version for pid in library.pathway_ids()}
    else:
        pathways = {info.pathway_id: info.version for info in deployed}
    return Library(pathways=pathways, rule_sets=_rule_sets(settings.rules_dir))


def require_library(settings: Settings, library: Library) -> None:
    """Refuse to start with no pathways or no rule sets, unless ``settings.allow_empty_library``.

    Raises:
        EmptyLibraryError: naming each empty or missing folder and the settings that fix it.
    """
    if settings.allow_empty_library:
        return
    problems = []
    if not library.pathways:
        problems.append(
            _empty("pathways", settings.pathways_dir, "pathway (a top-level .bpmn file with an executable process)")
        )
    if not library.rule_sets:
        problems.append(_empty("rules", settings.rules_dir, "rule set (a .yaml file with a ruleset: field)"))
    if problems:
        raise EmptyLibraryError(
            "refusing to start: " + "; ".join(problems) + ". Point CAREPATH_PATHWAYS_DIR and CAREPATH_RULES_DIR "
            "at your library, or set CAREPATH_ALLOW_EMPTY_LIBRARY=1 to start a fresh deployment without one."
        )


def _empty(kind: str, folder: Path, holding: str) -> str:
    return f"the {kind} folder {folder} " + ("does not exist" if not folder.is_dir() else f"holds no {holding}")


def _rule_sets(folder: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            data = read_author_bytes(path)
        except RuleFileError:
            continue  # unreadable, not a regular file or too large: the registry reports it when used
        try:
            parsed = yaml.load(data, Loader=_YAML_LOADER)
        except (yaml.YAMLError, ValueError, OverflowError):  # ValueError: a date such as 2026-02-30
            continue  # a broken file names no rule set; the registry reports it when used
        if isinstance(parsed, dict) and isinstance(parsed.get("ruleset"), str):
            found[parsed["ruleset"]] = file_version(data)
    return found
