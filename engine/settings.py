"""Configuration as a small validated value object."""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ENVIRONMENTS", "PATIENT_IDENTIFIERS", "Settings", "bundled_pathways_dir", "bundled_rules_dir",
           "bundled_service_directory", "default_data_dir", "default_database_url"]

_TRUE = ("1", "true", "yes", "on")
MIN_TRAIL_KEY_LENGTH = 32
ENVIRONMENTS = ("development", "production")
# How the FHIR API names patients (CAREPATH_FHIR_PATIENT_IDENTIFIER): the identifier system this
# deployment's patient references belong to (docs/fhir.md).
PATIENT_IDENTIFIERS = ("nhs-number", "personnummer")


def default_data_dir() -> Path:
    """Where CarePath keeps its data when no database is configured: ``$XDG_DATA_HOME/carepath``, else
    ``~/.local/share/carepath`` (the XDG base directory default). The same from every folder a command
    is run in, so ``carepath token create`` and ``carepath serve`` meet one database. Creates nothing."""
    base = os.environ.get("XDG_DATA_HOME", "")
    # The XDG specification: a relative XDG_DATA_HOME is invalid and ignored.
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "carepath"


def default_database_url() -> str:
    """SQLite in :func:`default_data_dir`: ``.../carepath/carepath.sqlite3`` (the embedded default)."""
    return f"sqlite:///{default_data_dir() / 'carepath.sqlite3'}"


def bundled_pathways_dir() -> Path:
    """The pathways shipped with CarePath (the package ``carepath_content.pathways``, see pyproject.toml).

    Raises:
        RuntimeError: when CarePath is not installed (``pip install -e .`` in a checkout).
    """
    return _package_folder("carepath_content.pathways")


def bundled_rules_dir() -> Path:
    """The rule sets and catalogues shipped with CarePath (the package ``carepath_content.rules``).

    Raises:
        RuntimeError: when CarePath is not installed (``pip install -e .`` in a checkout).
    """
    return _package_folder("carepath_content.rules")


def bundled_service_directory() -> Path:
    """The EXAMPLE service directory shipped with CarePath (``carepath_content.directory``): names and
    numbers that reach nobody, refused by a server in production mode (docs/documents.md).

    Raises:
        RuntimeError: when CarePath is not installed (``pip install -e .`` in a checkout).
    """
    return _package_folder("carepath_content.directory") / "service_directory.yaml"


def _package_folder(package: str) -> Path:
    try:
        folder = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise RuntimeError(f"the bundled library ({package}) is not installed: install CarePath "
                           "(in a checkout: pip install -e .)") from exc
    # Installed from a wheel or editable, the package is a folder on disk; the pathway library and
    # the rule registry read folders (a zipped install would need extracting first).
    if not isinstance(folder, Path):
        raise RuntimeError(f"the bundled library ({package}) is not a folder on disk: {folder}")
    return folder


def _trail_settings(env: Mapping[str, str]) -> dict[str, object]:
    """``CAREPATH_TRAIL_KEY_FILE``, ``CAREPATH_CHECKPOINT_DIR`` and ``CAREPATH_CHECKPOINT_SECONDS``.

    Raises:
        ValueError: CAREPATH_CHECKPOINT_SECONDS is not a number.
    """
    found: dict[str, object] = {}
    if env.get("CAREPATH_TRAIL_KEY_FILE"):
        found["trail_key_file"] = Path(env["CAREPATH_TRAIL_KEY_FILE"])
    if env.get("CAREPATH_CHECKPOINT_DIR"):
        found["checkpoint_dir"] = Path(env["CAREPATH_CHECKPOINT_DIR"])
    if env.get("CAREPATH_CHECKPOINT_SECONDS"):
        try:
            found["checkpoint_seconds"] = float(env["CAREPATH_CHECKPOINT_SECONDS"])
        except ValueError as exc:
            raise ValueError("CAREPATH_CHECKPOINT_SECONDS must be a number of seconds") from exc
    return found


def _psycopg_url(url: str) -> str:
    """psycopg 3 is the driver we ship; plain postgresql:// would pick psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@dataclass(frozen=True)
class Settings:
    """Where CarePath finds its database, pathways and rules.

    ``allow_empty_library``: a server or worker starts even when the pathways or rules folder is
    missing or empty (a fresh deployment that will upload its pathways); otherwise it refuses
    (:func:`engine.library.require_library`).

    ``environment``: ``development`` or ``production``. In production a server refuses to start on an
    example ``service_directory`` (the numbers printed in patients' documents) unless
    ``allow_example_directory`` (:func:`engine.documents.directory.require_service_directory`).

    ``trail_key_file`` (``CAREPATH_TRAIL_KEY_FILE``): a file holding the secret that authenticates
    the event trail (HMAC-SHA256, :mod:`engine.audit`), at least 32 characters -- e.g. the output
    of ``openssl rand -hex 32``, readable only by CarePath's user, kept out of the database and its
    backups. Without it events are hash-chained but not authenticated, and a server or worker
    warns at start (docs/operations.md says why it does not refuse). ``checkpoint_dir``
    (``CAREPATH_CHECKPOINT_DIR``): append-only storage outside the database where the worker writes
    a signed checkpoint of every instance's trail head every ``checkpoint_seconds``
    (``CAREPATH_CHECKPOINT_SECONDS``, default 3600).

    ``fhir_patient_identifier``: the identifier system of this deployment's patient references, for
    the FHIR API: ``nhs-number`` (UK Core) or ``personnummer`` (Sweden).

    ``read_database_url`` (``CAREPATH_READ_DATABASE_URL``): a PostgreSQL streaming replica of the
    database, which the API's ``GET`` requests read once it has caught up with what their caller wrote
    (:mod:`engine.db.replica`); the worker, the command line and every write use the primary.

    Raises:
        ValueError: for a database URL of an unsupported kind, a non-positive limit, an unknown environment
            or an unknown patient identifier system.
    """

    database_url: str = field(default_factory=default_database_url)
    pathways_dir: Path = field(default_factory=bundled_pathways_dir)
    rules_dir: Path = field(default_factory=bundled_rules_dir)
    allow_empty_library: bool = False
    # Safe-expression bounds (steps and seconds per evaluation).
    expression_max_steps: int = 10_000
    expression_max_seconds: float = 0.25
    environment: str = "development"
    service_directory: Path = field(default_factory=bundled_service_directory)
    allow_example_directory: bool = False
    trail_key_file: Path | None = None
    checkpoint_dir: Path | None = None
    checkpoint_seconds: float = 3600.0
    fhir_patient_identifier: str = PATIENT_IDENTIFIERS[0]
    read_database_url: str | None = None

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise ValueError(f"unknown environment {self.environment!r}: expected {' or '.join(ENVIRONMENTS)}")
        if not self.database_url.startswith(("sqlite", "postgresql")):
            raise ValueError(f"unsupported database URL scheme: {self.database_url.split(':', 1)[0]}")
        if self.expression_max_steps <= 0 or self.expression_max_seconds <= 0:
            raise ValueError("expression limits must be positive")
        if self.checkpoint_seconds <= 0:
            raise ValueError("CAREPATH_CHECKPOINT_SECONDS must be positive")
        if self.trail_key_file is not None:
            self.trail_key()  # a key that is configured but unusable refuses every start
        if self.read_database_url is not None and not (
                self.read_database_url.startswith("postgresql") and self.database_url.startswith("postgresql")):
            raise ValueError("CAREPATH_READ_DATABASE_URL names a PostgreSQL streaming replica of a PostgreSQL "
                             "CAREPATH_DATABASE_URL; SQLite has no replicas")
        if self.fhir_patient_identifier not in PATIENT_IDENTIFIERS:
            raise ValueError(f"CAREPATH_FHIR_PATIENT_IDENTIFIER must be one of {', '.join(PATIENT_IDENTIFIERS)}")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def trail_key(self) -> bytes | None:
        """The event trail's secret, read from ``trail_key_file`` now (never kept on this object, so
        it appears in no repr or traceback); None when no file is configured.

        Raises:
            ValueError: the file cannot be read or holds fewer than 32 characters.
        """
        if self.trail_key_file is None:
            return None
        try:
            secret = self.trail_key_file.read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"CAREPATH_TRAIL_KEY_FILE {self.trail_key_file} cannot be read: {exc.strerror}") from exc
        if len(secret) < MIN_TRAIL_KEY_LENGTH:
            raise ValueError(f"CAREPATH_TRAIL_KEY_FILE {self.trail_key_file} holds {len(secret)} characters; a trail "
                             f"key needs at least {MIN_TRAIL_KEY_LENGTH} (openssl rand -hex 32)")
        return secret

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``CAREPATH_DATABASE_URL``, ``CAREPATH_PATHWAYS_DIR``, ``CAREPATH_RULES_DIR``,
        ``CAREPATH_ALLOW_EMPTY_LIBRARY`` (1, true, yes or on), ``CAREPATH_ENV``,
        ``CAREPATH_SERVICE_DIRECTORY``, ``CAREPATH_ALLOW_EXAMPLE_DIRECTORY``,
        ``CAREPATH_FHIR_PATIENT_IDENTIFIER`` and ``CAREPATH_READ_DATABASE_URL``. Without a database URL:
        :func:`default_database_url`.

        Raises:
            ValueError: as the constructor does.
        """
        env = os.environ if env is None else env
        kwargs: dict[str, object] = {}
        if env.get("CAREPATH_DATABASE_URL"):
            kwargs["database_url"] = _psycopg_url(env["CAREPATH_DATABASE_URL"])
        if env.get("CAREPATH_PATHWAYS_DIR"):
            kwargs["pathways_dir"] = Path(env["CAREPATH_PATHWAYS_DIR"])
        if env.get("CAREPATH_RULES_DIR"):
            kwargs["rules_dir"] = Path(env["CAREPATH_RULES_DIR"])
        if env.get("CAREPATH_ALLOW_EMPTY_LIBRARY", "").strip().lower() in _TRUE:
            kwargs["allow_empty_library"] = True
        if env.get("CAREPATH_ENV"):
            kwargs["environment"] = env["CAREPATH_ENV"].strip().lower()
        if env.get("CAREPATH_SERVICE_DIRECTORY"):
            kwargs["service_directory"] = Path(env["CAREPATH_SERVICE_DIRECTORY"])
        if env.get("CAREPATH_ALLOW_EXAMPLE_DIRECTORY", "").strip().lower() in _TRUE:
            kwargs["allow_example_directory"] = True
        kwargs.update(_trail_settings(env))
        if env.get("CAREPATH_FHIR_PATIENT_IDENTIFIER"):
            kwargs["fhir_patient_identifier"] = env["CAREPATH_FHIR_PATIENT_IDENTIFIER"].strip().lower()
        if env.get("CAREPATH_READ_DATABASE_URL"):
            kwargs["read_database_url"] = _psycopg_url(env["CAREPATH_READ_DATABASE_URL"])
        return cls(**kwargs)  # type: ignore[arg-type]
