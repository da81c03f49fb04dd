"""Every table CarePath owns, imported in one place so Alembic sees them all."""

from engine import access, idempotency  # noqa: F401  (api_tokens, idempotency_records)
from engine.careplan import service  # noqa: F401  (care_plan_items, care_plan_notes)
from engine.db import models  # noqa: F401
from engine.db.base import Base
from engine.rules import store  # noqa: F401

target_metadata = Base.metadata
