"""Every table CarePath owns, imported in one place so Alembic sees them all."""

from .. import access, idempotency  # noqa: F401  (api_tokens, idempotency_records)
from .. import careplan  # noqa: F401
from ..rules import store  # noqa: F401
from . import models  # noqa: F401
from .base import Base

target_metadata = Base.metadata
