"""The package's public surface is explicit and importable."""

from __future__ import annotations

import engine.rules


def test_all_names_exist() -> None:
    assert engine.rules.__all__ == sorted(engine.rules.__all__, key=lambda n: (not n.isupper(), n))
    for name in engine.rules.__all__:
        assert hasattr(engine.rules, name), name


def test_store_module_is_importable_for_alembic() -> None:
    from engine.db.base import Base
    from engine.rules import store

    assert store.RuleEvaluationRecord.__tablename__ in Base.metadata.tables
    assert "rule_versions" in Base.metadata.tables
