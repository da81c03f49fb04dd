"""Versions: a changed file is picked up without a restart; old versions keep evaluating."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import NotFoundError, RuleFileError
from engine.rules import Assessment, RuleSetRegistry
from engine.rules.loader import file_version


def _touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_changed_file_is_picked_up_and_old_version_still_evaluates(
    rules_copy: Path, write_mini: Callable[..., Path]
) -> None:
    path = write_mini(rules_copy, threshold=8)
    registry = RuleSetRegistry(rules_copy)
    old = registry.current("mini")
    assessment = Assessment({"worry_fear_anxiety": 6})
    assert registry.evaluate("mini", assessment).firings == ()

    write_mini(rules_copy, threshold=5)
    _touch_later(path)
    new = registry.current("mini")
    assert new.version != old.version
    assert new.version == file_version(path.read_bytes())
    assert new.compiled.durable_name != old.compiled.durable_name

    now = registry.evaluate("mini", assessment)
    assert now.ruleset_version == new.version
    assert [f.rule_id for f in now.firings] == ["anxiety-urgent"]
    before = registry.evaluate("mini", assessment, version=old.version)
    assert before.ruleset_version == old.version and before.firings == ()
    assert set(registry.versions("mini")) == {old.version, new.version}


def test_unchanged_file_is_not_recompiled(rules_copy: Path, write_mini: Callable[..., Path]) -> None:
    write_mini(rules_copy)
    registry = RuleSetRegistry(rules_copy)
    assert registry.current("mini") is registry.current("mini")


def test_invalid_edit_raises_but_old_version_keeps_working(rules_copy: Path, write_mini: Callable[..., Path]) -> None:
    path = write_mini(rules_copy)
    registry = RuleSetRegistry(rules_copy)
    old = registry.current("mini")
    path.write_text(path.read_text().replace("urgency: urgent", "urgency: asap"))
    _touch_later(path)
    with pytest.raises(RuleFileError) as info:
        registry.current("mini")
    assert "asap" in str(info.value)
    kept = registry.evaluate("mini", Assessment({"worry_fear_anxiety": 9}), version=old.version)
    assert kept.outcomes.referrals[0].urgency == "urgent"


def test_unknown_rule_set_and_version(rules_copy: Path, write_mini: Callable[..., Path]) -> None:
    write_mini(rules_copy)
    registry = RuleSetRegistry(rules_copy)
    with pytest.raises(NotFoundError):
        registry.current("nope")
    with pytest.raises(NotFoundError):
        registry.by_version("mini", "0" * 64)
    assert registry.names() == ["mini"]


def test_catalogue_change_is_picked_up(rules_copy: Path, write_mini: Callable[..., Path]) -> None:
    write_mini(rules_copy)
    registry = RuleSetRegistry(rules_copy)
    first = registry.current("mini")
    services = rules_copy / "catalogues" / "services.yaml"
    services.write_text(services.read_text() + "\n# deployment edit\n")
    _touch_later(services)
    second = registry.current("mini")
    assert second.version == first.version  # same rule text
    assert second.catalogue.version != first.catalogue.version
    e = registry.evaluate("mini", Assessment({"worry_fear_anxiety": 9}))
    assert e.catalogue_version == second.catalogue.version


def test_renamed_file_is_found_again(rules_copy: Path, write_mini: Callable[..., Path]) -> None:
    path = write_mini(rules_copy)
    registry = RuleSetRegistry(rules_copy)
    first = registry.current("mini")
    path.rename(rules_copy / "renamed.yaml")
    assert registry.current("mini").version == first.version
    (rules_copy / "renamed.yaml").unlink()
    with pytest.raises(NotFoundError):
        registry.current("mini")
