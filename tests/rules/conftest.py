"""Fixtures for the rules tests: the bundled rules, a writable copy, a database session."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from engine.db.base import Base
from engine.db.models import RuleEvaluationRecord, RuleVersionRecord
from engine.rules import Catalogue, LoadedRuleset, RuleSetRegistry

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"
BROKEN_DIR = Path(__file__).resolve().parent / "broken"

MINI_RULES = """\
ruleset: mini
title: A small rule set for tests
rules:
  - id: anxiety-urgent
    title: Urgent psychological support
    description: Worry scored 8 or more.
    guidance: [{source: NICE CSG4, title: Improving supportive and palliative care for adults with cancer}]
    priority: high
    when: {concern: {code: worry_fear_anxiety, score: {at_least: THRESHOLD}}}
    then:
      refer: [{intervention: psychological-support-referral, urgency: urgent}]
"""


@pytest.fixture(scope="session")
def registry() -> RuleSetRegistry:
    return RuleSetRegistry(RULES_DIR)


@pytest.fixture(scope="session")
def bundled(registry: RuleSetRegistry) -> LoadedRuleset:
    return registry.current("supportive_care")


@pytest.fixture(scope="session")
def catalogue(bundled: LoadedRuleset) -> Catalogue:
    return bundled.catalogue


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A writable rules folder: the bundled catalogues, plus whatever a test writes."""
    target = tmp_path / "rules"
    target.mkdir()
    shutil.copytree(RULES_DIR / "catalogues", target / "catalogues")
    return target


def _write_mini(folder: Path, threshold: int = 8) -> Path:
    path = folder / "mini.yaml"
    path.write_text(MINI_RULES.replace("THRESHOLD", str(threshold)), encoding="utf-8")
    return path


@pytest.fixture
def write_mini() -> Callable[..., Path]:
    """``write_mini(folder, threshold=8)`` writes a one-rule file ``mini.yaml``."""
    return _write_mini


@pytest.fixture(scope="session")
def rules_dir() -> Path:
    return RULES_DIR


@pytest.fixture(scope="session")
def broken_dir() -> Path:
    return BROKEN_DIR


@pytest.fixture
def db_session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine, tables=[RuleVersionRecord.__table__, RuleEvaluationRecord.__table__])
    with Session(engine) as session:
        yield session
    engine.dispose()
