"""`carepath validate`: diagrams and rule files, one line per problem, non-zero exit on problems."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from api.cli import main

TESTS = Path(__file__).resolve().parent


def test_bundled_pathways_and_rules_validate_clean() -> None:
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.output


def test_broken_diagrams_print_file_line_element_and_exit_non_zero() -> None:
    broken = TESTS / "diagrams" / "broken" / "gateway_flow_without_condition.bpmn"
    result = CliRunner().invoke(main, ["validate", str(broken)])
    assert result.exit_code == 1
    [line] = [
        x
        for x in result.output.splitlines()
        if x.endswith(".bpmn") is False and ".bpmn:" in x and "start data schema" not in x
    ]  # the note that the diagram has none
    path, line_no, element, message = line.split(":", 3)
    assert path.endswith("gateway_flow_without_condition.bpmn") and int(line_no) > 0
    assert element.strip() and "default" in message


def test_broken_rule_files_print_file_line_and_column() -> None:
    broken = sorted((TESTS / "rules" / "broken").glob("*.yaml"))
    result = CliRunner().invoke(main, ["validate", *map(str, broken)])
    assert result.exit_code == 1
    lines = [x for x in result.output.splitlines() if ".yaml:" in x]
    assert len(lines) >= len(broken)
    files = {x.split(":", 1)[0] for x in lines}
    assert files == {str(p) for p in broken}


def test_a_folder_with_nothing_to_check_is_reported(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "nothing to check" in result.output


def _rules_copy(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(TESTS.parent / "rules", rules, ignore=shutil.ignore_patterns("__pycache__"))
    return rules


def test_a_catalogue_file_is_validated_as_a_catalogue(tmp_path: Path) -> None:
    # The valid concerns.yaml was reported as "unknown field 'domains' in a rule file".
    rules = _rules_copy(tmp_path)
    for target in (rules / "catalogues" / "concerns.yaml", rules / "catalogues"):
        result = CliRunner().invoke(main, ["validate", str(target)])
        assert result.exit_code == 0 and "no problems found" in result.output, result.output


def test_warning_signs_are_validated(tmp_path: Path) -> None:
    # A warning sign with "urgency: asap" passed validate.
    rules = _rules_copy(tmp_path)
    signs = rules / "catalogues" / "warning_signs.yaml"
    text = signs.read_text()
    assert "urgency: emergency" in text
    signs.write_text(text.replace("urgency: emergency", "urgency: asap", 1))
    line = next(n for n, x in enumerate(signs.read_text().splitlines(), 1) if "urgency: asap" in x)
    for target in (rules, signs):
        result = CliRunner().invoke(main, ["validate", str(target)])
        assert result.exit_code == 1, result.output
        assert f"{signs}:{line}:" in result.output and "unknown urgency 'asap'" in result.output
