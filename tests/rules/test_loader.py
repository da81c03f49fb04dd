"""Loading and validating rule files and catalogues, with file:line:column messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.errors import RuleFileError
from engine.rules import Catalogue, LoadedRuleset, load_rule_file, parse_rule_text
from engine.rules.catalogue import load_catalogue, parse_catalogue
from engine.rules.loader import file_version
from engine.rules.model import AllOf, AnyOf, ConcernCondition, ContextCondition, NoneOf

BROKEN_DIR = Path(__file__).resolve().parent / "broken"
RULES_DIR = Path(__file__).resolve().parents[2] / "rules"
BROKEN = sorted(BROKEN_DIR.glob("*.yaml"))


def test_at_least_ten_broken_files() -> None:
    assert len(BROKEN) >= 10


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_file_reports_file_line_column(path: Path, catalogue: Catalogue) -> None:
    expected = [f"{path}:{m}" for m in re.findall(r"^# expect: (.*)$", path.read_text(), re.M)]
    assert expected, "each broken file states its expected message"
    with pytest.raises(RuleFileError) as info:
        load_rule_file(path, catalogue)
    assert [str(p) for p in info.value.problems] == expected


def test_duplicate_ids_name_both_places(catalogue: Catalogue) -> None:
    with pytest.raises(RuleFileError) as info:
        load_rule_file(BROKEN_DIR / "duplicate_id.yaml", catalogue)
    lines = sorted(p.line or 0 for p in info.value.problems)
    assert lines == [6, 12]
    assert all(p.element == "dup" for p in info.value.problems)


def test_every_problem_in_a_file_is_reported_at_once(catalogue: Catalogue) -> None:
    text = (BROKEN_DIR / "unknown_concern.yaml").read_text().replace("urgency", "x")
    text = text.replace("info-emotional-support", "info-emotional-suport")
    with pytest.raises(RuleFileError) as info:
        parse_rule_text(text, "two.yaml", catalogue)
    messages = [p.message for p in info.value.problems]
    assert len(messages) == 2
    assert "did you mean 'info-emotional-support'" in messages[1]


def test_bundled_rules_load_with_guidance(bundled: LoadedRuleset) -> None:
    rules = bundled.compiled.rule_file.rules
    assert len(rules) >= 15
    assert all(r.guidance and r.description for r in rules)
    ids = {r.id for r in rules}
    for needed in (
        "psych-support-urgent",
        "emotional-support-moderate",
        "fever-on-sact",
        "young-person-travel",
        "return-to-work",
    ):
        assert needed in ids


def test_version_is_sha256_of_the_file(bundled: LoadedRuleset) -> None:
    data = (RULES_DIR / "supportive_care.yaml").read_bytes()
    assert bundled.version == file_version(data)
    assert len(bundled.version) == 64


def test_condition_tree_is_parsed(catalogue: Catalogue, bundled: LoadedRuleset) -> None:
    rule = bundled.compiled.rule_file.rule("emotional-support-moderate")
    assert isinstance(rule.when, AllOf)
    assert isinstance(rule.when.children[0], AnyOf)
    assert isinstance(rule.when.children[1], NoneOf)
    leaf = rule.when.children[0].children[0]
    assert isinstance(leaf, ConcernCondition)
    assert leaf.score == (("at_least", 5), ("at_most", 7))
    assert leaf.loc.line > 1
    young = bundled.compiled.rule_file.rule("young-person-travel")
    assert isinstance(young.when, AllOf)
    context = young.when.children[0]
    assert isinstance(context, AllOf)
    assert ContextCondition("age", "at_most", 25, context.children[0].loc) in context.children


def test_referral_service_defaults_from_the_catalogue(bundled: LoadedRuleset) -> None:
    rule = bundled.compiled.rule_file.rule("psych-support-urgent")
    assert rule.then.refer[0].service == "psychological_support"


def test_catalogue_contents(catalogue: Catalogue) -> None:
    assert set(catalogue.domains) == {"physical", "emotional", "practical", "family", "spiritual", "lifestyle", "other"}
    assert catalogue.concerns["worry_fear_anxiety"].domain == "emotional"
    # Issue 14: the needs added to the checklist, and the children's items.
    assert {
        code: catalogue.concerns[code].domain
        for code in (
            "swallowing",
            "stoma_bowel_control",
            "fertility",
            "fear_of_recurrence",
            "carer_own_needs",
            "safeguarding",
            "children_needs",
            "interpreter_communication",
            "other_concern",
            "school",
            "friends",
            "family_life",
        )
    } == {
        "swallowing": "physical",
        "stoma_bowel_control": "physical",
        "fertility": "physical",
        "fear_of_recurrence": "emotional",
        "carer_own_needs": "family",
        "safeguarding": "family",
        "children_needs": "family",
        "interpreter_communication": "practical",
        "other_concern": "other",
        "school": "practical",
        "friends": "family",
        "family_life": "family",
    }
    assert all(i.name_sv and i.guidance for i in catalogue.interventions.values())
    assert catalogue.directory and all(e.example for e in catalogue.directory)
    assert catalogue.services_for("young_people_support", "UK")


def test_catalogue_problems_are_located(tmp_path: Path) -> None:
    folder = tmp_path / "catalogues"
    folder.mkdir()
    for name in ("concerns.yaml", "interventions.yaml", "services.yaml"):
        (folder / name).write_text((RULES_DIR / "catalogues" / name).read_text())
    text = (folder / "interventions.yaml").read_text().replace("service: dietetics", "service: dietetic")
    (folder / "interventions.yaml").write_text(text)
    with pytest.raises(RuleFileError) as info:
        load_catalogue(folder)
    (problem,) = info.value.problems
    assert problem.file and problem.file.endswith("interventions.yaml")
    assert problem.line and problem.column == 14
    assert "did you mean 'dietetics'" in problem.message


def test_catalogue_version_covers_all_three_files(catalogue: Catalogue) -> None:
    changed = dict(catalogue.sources)
    changed["services.yaml"] += "\n# a comment\n"
    assert parse_catalogue(changed).version != catalogue.version


def test_missing_file_is_a_rule_file_error(catalogue: Catalogue, tmp_path: Path) -> None:
    with pytest.raises(RuleFileError):
        load_rule_file(tmp_path / "nope.yaml", catalogue)


def _synthetic_rules(count: int, catalogue: Catalogue) -> str:
    code = sorted(catalogue.concerns)[0]
    rules = "".join(
        f"""  - id: r{n}
    title: Rule {n}
    description: One alternative each.
    guidance:
      - source: Synthetic
        title: A size test
    when:
      concern: {{code: {code}, score: {{at_least: {1 + n % 10}}}}}
    then:
      inform: [info-when-to-call]
"""
        for n in range(count)
    )
    return f"ruleset: synthetic\ntitle: Synthetic\nrules:\n{rules}"


def test_a_rule_file_too_large_for_one_durable_rules_rule_set_is_refused_where_it_is_read(
    catalogue: Catalogue,
) -> None:
    """durable-rules holds 257 alternatives in one rule set; with 258 its registration fails, and only at
    the first evaluation. The loader refuses such a file, located, and the largest still registers."""
    from engine.rules import Assessment, PatientContext, evaluate
    from engine.rules.compiler import compile_rule_file
    from engine.rules.evaluator import RulesHost
    from engine.rules.loader import MAX_RULESET_ALTERNATIVES

    largest = parse_rule_text(_synthetic_rules(MAX_RULESET_ALTERNATIVES, catalogue), "size.yaml", catalogue)
    code = sorted(catalogue.concerns)[0]
    found = evaluate(compile_rule_file(largest), catalogue, Assessment({code: 10}, PatientContext()), host=RulesHost())
    assert len(found.firings) == MAX_RULESET_ALTERNATIVES
    with pytest.raises(RuleFileError) as info:
        parse_rule_text(_synthetic_rules(MAX_RULESET_ALTERNATIVES + 1, catalogue), "size.yaml", catalogue)
    [problem] = info.value.problems
    assert (problem.file, problem.line) == ("size.yaml", 4)
    assert "258 alternatives" in str(problem) and "at most 257" in str(problem)
