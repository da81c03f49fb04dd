"""Every table CarePath owns, for Alembic: they are all declared in ``engine.db.models``."""

from engine.db import models  # noqa: F401  (declares every table on Base.metadata)
from engine.db.base import Base

target_metadata = Base.metadata
