"""Every table CarePath owns, imported in one place so Alembic sees them all."""

from .. import (  # noqa: F401  (api_tokens, idempotency_records)
    access,
    careplan,  # noqa: F401
    idempotency,
)
from ..rules import store  # noqa: F401
from . import models  # noqa: F401
from .base import Base

target_metadata = Base.metadata
