"""Configuration as a small validated value object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings", "default_database_url"]

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_database_url() -> str:
    """SQLite in ./instance/carepath.sqlite3 (the embedded default)."""
    return f"sqlite:///{Path.cwd() / 'instance' / 'carepath.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    """Where CarePath finds its database, pathways and rules.

    Raises:
        ValueError: for a database URL of an unsupported kind or a non-positive limit.
    """

    database_url: str = field(default_factory=default_database_url)
    pathways_dir: Path = _PROJECT_ROOT / "pathways"
    rules_dir: Path = _PROJECT_ROOT / "rules"
    # Safe-expression bounds (steps and seconds per evaluation).
    expression_max_steps: int = 10_000
    expression_max_seconds: float = 0.25

    def __post_init__(self) -> None:
        if not self.database_url.startswith(("sqlite", "postgresql")):
            raise ValueError(f"unsupported database URL scheme: {self.database_url.split(':', 1)[0]}")
        if self.expression_max_steps <= 0 or self.expression_max_seconds <= 0:
            raise ValueError("expression limits must be positive")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``CAREPATH_DATABASE_URL``, ``CAREPATH_PATHWAYS_DIR`` and ``CAREPATH_RULES_DIR``."""
        env = os.environ if env is None else env
        kwargs: dict[str, object] = {}
        if env.get("CAREPATH_DATABASE_URL"):
            url = env["CAREPATH_DATABASE_URL"]
            # psycopg 3 is the driver we ship; plain postgresql:// would pick psycopg2.
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            kwargs["database_url"] = url
        if env.get("CAREPATH_PATHWAYS_DIR"):
            kwargs["pathways_dir"] = Path(env["CAREPATH_PATHWAYS_DIR"])
        if env.get("CAREPATH_RULES_DIR"):
            kwargs["rules_dir"] = Path(env["CAREPATH_RULES_DIR"])
        return cls(**kwargs)  # type: ignore[arg-type]
