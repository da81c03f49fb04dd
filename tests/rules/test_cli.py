"""``carepath rules ...`` through click's test runner, and validate_rule_paths."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from api.cli_rules import rules, validate_rule_paths
from engine.clock import ManualClock
from engine.db.base import Base
from engine.db.models import RuleEvaluationRecord, RuleVersionRecord
from engine.pathways.validation import rule_set_names
from engine.rules import Assessment, RuleSetRegistry, evaluate_and_record


def test_rules_test_command_passes_on_the_bundled_rules(rules_dir: Path) -> None:
    result = CliRunner().invoke(rules, ["test", "--rules-dir", str(rules_dir), "--cohort", "50"])
    assert result.exit_code == 0, result.output
    assert "0 failed, 0 contradiction(s), 0 rule(s) not fired by any case" in result.output


def test_rules_test_command_fails_with_a_diff(rules_copy: Path, write_mini: Callable[..., Path]) -> None:
    write_mini(rules_copy)
    (rules_copy / "tests").mkdir()
    (rules_copy / "tests" / "t.yaml").write_text(
        "ruleset: mini\ncases:\n  - name: x\n    given: {concerns: {worry_fear_anxiety: 9}}\n    expect: {}\n"
    )
    result = CliRunner().invoke(rules, ["test", "--rules-dir", str(rules_copy), "--cohort", "0"])
    assert result.exit_code == 1
    assert "+ refer psychological-support-referral (urgent)" in result.output


def test_simulate_command(rules_dir: Path) -> None:
    result = CliRunner().invoke(
        rules, ["simulate", "--cohort", "50", "--seed", "3", "--json", "--rules-dir", str(rules_dir)]
    )
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output)
    assert report["cohort"] == 50 and report["seed"] == 3


def test_simulate_writes_the_demand_chart_as_svg(rules_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "demand.svg"
    result = CliRunner().invoke(
        rules,
        ["simulate", "--cohort", "50", "--seed", "3", "--json", "--svg", str(target), "--rules-dir", str(rules_dir)],
    )
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    svg = ET.fromstring(target.read_text(encoding="utf-8"))
    ns = "{http://www.w3.org/2000/svg}"
    assert svg.get("role") == "img" and "synthetic cohort of 50 (seed 3)" in svg.find(f"{ns}title").text
    # A bar per service, its words the simulation's counts by urgency, busiest first.
    bars = [g.find(f"{ns}title").text for g in svg.iter(f"{ns}g") if g.find(f"{ns}title") is not None]
    services = sorted(report["referrals_per_service"].items(), key=lambda kv: (-kv[1]["total"], kv[0]))
    assert [bar.split(":")[0] for bar in bars] == [service for service, _ in services]
    service, counts = services[0]
    for urgency in ("emergency", "urgent", "soon", "routine"):
        if urgency in counts:
            assert f"{urgency} {counts[urgency]}" in bars[0]


def test_explain_command(tmp_path: Path, rules_copy: Path, write_mini: Callable[..., Path]) -> None:
    write_mini(rules_copy)
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    Base.metadata.create_all(engine, tables=[RuleVersionRecord.__table__, RuleEvaluationRecord.__table__])
    factory = sessionmaker(engine)
    with factory() as session, session.begin():
        e = evaluate_and_record(
            session,
            RuleSetRegistry(rules_copy),
            "mini",
            Assessment({"worry_fear_anxiety": 6}),
            clock=ManualClock(datetime(2026, 1, 5, tzinfo=UTC)),
        )
    obj = {"session_factory": factory, "settings": None}
    runner = CliRunner()
    why_not = runner.invoke(
        rules,
        ["explain", e.id, "--why-not", "psychological-support-referral", "--rules-dir", str(rules_copy)],
        obj=obj,
    )
    assert why_not.exit_code == 0, why_not.output
    assert "failed: worry_fear_anxiety scored at least 8; actual: worry_fear_anxiety scored 6" in why_not.output
    missing = runner.invoke(rules, ["explain", "nope", "--why", "x"], obj=obj)
    assert missing.exit_code == 1 and "no rule evaluation with id nope" in missing.output
    both = runner.invoke(rules, ["explain", e.id], obj=obj)
    assert both.exit_code == 2
    engine.dispose()


def test_validate_rule_paths(rules_dir: Path, rules_copy: Path, broken_dir: Path) -> None:
    assert validate_rule_paths([rules_dir]) == []
    (rules_copy / "bad.yaml").write_text((broken_dir / "bad_urgency.yaml").read_text())
    problems = validate_rule_paths([rules_copy])
    assert [str(p) for p in problems] == [
        f"{rules_copy / 'bad.yaml'}:13:20: broken-1: unknown urgency 'asap'; "
        "expected one of routine, soon, urgent, emergency"
    ]
    single = validate_rule_paths([rules_copy / "bad.yaml"])
    assert single == problems


def test_known_rule_sets(rules_dir: Path, rules_copy: Path, broken_dir: Path, tmp_path: Path) -> None:
    known_rule_sets = rule_set_names  # what validate and deploy both ask
    assert known_rule_sets(rules_dir) == {"supportive_care"}
    (rules_copy / "bad.yaml").write_text((broken_dir / "bad_urgency.yaml").read_text())
    assert known_rule_sets(rules_copy) == {"broken"}  # named even though the file has a mistake
    assert known_rule_sets(tmp_path / "missing") is None
