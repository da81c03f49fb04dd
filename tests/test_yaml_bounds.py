"""Rule, catalogue and rule-test YAML is read with bounds: anchors and aliases, too many values, too deep
nesting, foreign tags and bytes that are not UTF-8 are each a problem with its line, never a hang or a
traceback."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import main
from engine.errors import RuleFileError
from engine.rules import yaml_source
from engine.rules.catalogue import load_catalogue
from engine.rules.loader import load_rule_file
from engine.rules.testing import load_cases
from engine.rules.yaml_source import MAX_DEPTH, YamlReader
from engine.settings import bundled_pathways_dir, bundled_rules_dir


def _billion_laughs() -> str:
    """Nine aliases to nine aliases ... eleven times over: 9**12 values from about 600 bytes."""
    lines = ['x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    lines += ["ruleset: bomb", "title: Bomb", "rules:", "  - id: r1", "    title: t", "    when:", "      all: *a11"]
    return "\n".join(lines) + "\n"


def _problems(text: str) -> list[str]:
    reader = YamlReader("rules/x.yaml")
    reader.compose(text)
    return [str(p) for p in reader.problems]


def test_anchors_and_aliases_are_refused_where_they_are() -> None:
    assert _problems(_billion_laughs()) == [
        "rules/x.yaml:1:5: not valid YAML: anchors and aliases (&name, *name) are not allowed: write the value out "
        "in full"
    ]
    assert _problems("a: 1\nb:\n  - c: *x\n") == [  # an alias without its anchor is located too
        "rules/x.yaml:3:8: not valid YAML: anchors and aliases (&name, *name) are not allowed: write the value "
        "out in full"
    ]
    assert len(_problems("base: &b {x: 1}\nmerged:\n  <<: *b\n")) == 1  # merge keys are aliases


def test_too_many_values_and_too_deep_nesting_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_source, "MAX_NODES", 100)
    many = "items:\n" + "".join(f"  - v{n}\n" for n in range(200))
    assert _problems(many) == ["rules/x.yaml:99:5: not valid YAML: the file has more than 100 values: split it"]
    monkeypatch.undo()
    deep = "a: " + "[" * (MAX_DEPTH + 10) + "]" * (MAX_DEPTH + 10) + "\n"
    assert _problems(deep) == [
        f"rules/x.yaml:1:{MAX_DEPTH + 3}: not valid YAML: lists and mappings are nested more than {MAX_DEPTH} deep"
    ]
    very_deep = "[" * 100_000 + "]" * 100_000  # far past Python's recursion limit: still a located problem
    assert _problems(very_deep)[0].startswith(f"rules/x.yaml:1:{MAX_DEPTH + 1}: ")


def test_tags_other_than_yaml_types_are_refused() -> None:
    assert _problems("a: !!python/object/apply:os.system ['true']\n") == [
        "rules/x.yaml:1:4: not valid YAML: the tag 'tag:yaml.org,2002:python/object/apply:os.system' is not "
        "allowed: only YAML's own types are read"
    ]
    assert len(_problems("a: !custom 1\n")) == 1
    assert _problems("a: !!str 1\nb: ! plain\n") == []


def _rules_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(bundled_rules_dir(), folder)
    return folder


def test_a_rule_file_that_is_not_utf8_is_located(tmp_path: Path) -> None:
    rules = _rules_copy(tmp_path)
    bad = rules / "latin1.yaml"
    bad.write_bytes(b"ruleset: latin1\ntitle: Latin-1\ndescription: caf\xe9 au lait\nrules: []\n")
    catalogue = load_catalogue(rules / "catalogues")
    with pytest.raises(RuleFileError) as raised:
        load_rule_file(bad, catalogue)
    assert [(p.line, p.column) for p in raised.value.problems] == [(3, 17)]
    assert "0xe9" in raised.value.problems[0].message


def test_a_catalogue_and_a_case_file_that_are_not_utf8_are_located(tmp_path: Path) -> None:
    rules = _rules_copy(tmp_path)
    concerns = rules / "catalogues" / "concerns.yaml"
    concerns.write_bytes(concerns.read_bytes().replace(b"\n", b"\n# \xff\n", 1))
    with pytest.raises(RuleFileError) as raised:
        load_catalogue(rules / "catalogues")
    assert [(Path(p.file or "").name, p.line, p.column) for p in raised.value.problems] == [("concerns.yaml", 2, 3)]
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "bad.yaml").write_bytes(b"ruleset: supportive_care\ncases:\n  - name: \x80\n")
    with pytest.raises(RuleFileError) as raised:
        load_cases([cases])
    assert [(p.line, p.column) for p in raised.value.problems] == [(3, 11)]


def test_validate_and_rules_test_answer_at_once_with_the_line(tmp_path: Path) -> None:
    rules = _rules_copy(tmp_path)
    bomb = rules / "bomb.yaml"
    bomb.write_text(_billion_laughs())
    runner = CliRunner()
    started = time.process_time()  # CPU time: a busy machine does not make it fail
    result = runner.invoke(main, ["validate", str(bomb)])
    assert result.exit_code == 1, result.output
    assert f"{bomb}:1:5: not valid YAML: anchors and aliases" in result.output
    (rules / "tests" / "bomb.yaml").write_text(_billion_laughs().replace("ruleset: bomb", "ruleset: supportive_care"))
    (rules / "tests" / "latin1.yaml").write_bytes(b"ruleset: supportive_care\ncases: []\n# caf\xe9\n")
    bomb.unlink()
    result = runner.invoke(main, ["rules", "test", "--rules-dir", str(rules), "--cohort", "1"])
    assert result.exit_code == 1, result.output
    assert "bomb.yaml:1:5: not valid YAML: anchors and aliases" in result.output
    assert "latin1.yaml:3:6: not UTF-8" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert time.process_time() - started < 60  # a generous guard: before the bounds, these ran for many minutes


def test_the_bundled_rules_are_within_the_bounds() -> None:
    catalogue = load_catalogue(bundled_rules_dir() / "catalogues")
    for path in sorted(bundled_rules_dir().glob("*.yaml")):
        load_rule_file(path, catalogue)
    load_cases([bundled_rules_dir() / "tests"])


def _not_files(folder: Path) -> dict[Path, str]:
    """A named pipe, a link to a device that never ends, and a regular file one byte over the bound, each with
    the problem it is."""
    import os

    pipe, device, huge = folder / "pipe.yaml", folder / "zero.yaml", folder / "huge.yaml"
    os.mkfifo(pipe)  # opening it to read would wait for a writer
    device.symlink_to("/dev/zero")  # reading it would never end
    huge.write_bytes(b"#" * (yaml_source.MAX_FILE_BYTES + 1))
    not_regular = "not a regular file (a rule, catalogue or test file must be one)"
    return {pipe: not_regular, device: not_regular, huge: "the file is over 4 MiB"}


def test_a_pipe_a_device_or_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    rules = _rules_copy(tmp_path)
    catalogue = load_catalogue(rules / "catalogues")
    refused = _not_files(rules)
    for path, problem in refused.items():
        with pytest.raises(RuleFileError) as raised:
            load_rule_file(path, catalogue)
        assert [(p.file, p.message) for p in raised.value.problems] == [(str(path), problem)]
    result = CliRunner().invoke(main, ["validate", str(rules)])  # a folder: every rule file in it
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    for path, problem in refused.items():
        assert f"{path}: {problem}" in result.output
    from engine.rules import RuleSetRegistry

    registry = RuleSetRegistry(rules)  # the server's: the rule sets beside them still load
    assert registry.current("supportive_care").name == "supportive_care"
    for path, problem in _not_files(rules / "tests").items():  # rule-test files
        with pytest.raises(RuleFileError) as raised:
            load_cases([path])
        assert [(p.file, p.message) for p in raised.value.problems] == [(str(path), problem)]


_BIG = "1" + "0" * 5000  # past Python's 4,300-digit limit for reading a whole number


@pytest.mark.parametrize(
    ("value", "words"),
    [("2026-02-30", "'2026-02-30' is not a date in the calendar"), (_BIG, "a whole number of 5001 characters")],
)
def test_values_yaml_cannot_build_are_located_never_a_traceback(tmp_path: Path, value: str, words: str) -> None:
    # PyYAML's constructors raise ValueError for these; it reached the author as a Python traceback
    # from validate, pathways test and rules test.
    rules = _rules_copy(tmp_path)
    runner = CliRunner()
    bad_rule = rules / "bad.yaml"
    bad_rule.write_text(f"ruleset: bad\ntitle: Bad\nrules:\n  - id: r1\n    when: {{age: {{at_least: {value}}}}}\n")
    result = runner.invoke(main, ["validate", str(bad_rule)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"{bad_rule}:5:28: {words}" in result.output, result.output
    bad_rule.unlink()
    cases = rules / "tests" / "bad.yaml"
    cases.write_text(
        "ruleset: supportive_care\ncases:\n  - name: x\n"
        f"    given: {{concerns: {{fatigue: 8}}, context: {{last_sact_date: {value}}}}}\n    expect: []\n"
    )
    result = runner.invoke(main, ["rules", "test", "--rules-dir", str(rules), "--cohort", "1"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"bad.yaml:4:63: {words}" in result.output, result.output
    cases.unlink()
    concerns = rules / "catalogues" / "concerns.yaml"
    concerns.write_text(concerns.read_text() + f"\nextra: {value}\n")
    with pytest.raises(RuleFileError) as raised:
        load_catalogue(rules / "catalogues")
    assert words in str(raised.value.problems[0]) and raised.value.problems[0].line


def test_a_scenario_value_yaml_cannot_build_is_located(tmp_path: Path) -> None:
    pathways = tmp_path / "pathways"
    shutil.copytree(bundled_pathways_dir(), pathways)
    scenario = pathways / "tests" / "lung.yaml"
    lines = scenario.read_text().splitlines(keepends=True)
    number = next(n for n, line in enumerate(lines, 1) if "- until: '" in line)
    lines[number - 1] = lines[number - 1].split("- until:")[0] + "- until: 2026-02-30\n"
    scenario.write_text("".join(lines))
    runner = CliRunner()
    env = {"CAREPATH_PATHWAYS_DIR": str(pathways), "CAREPATH_RULES_DIR": str(bundled_rules_dir())}
    for command in (["validate", str(pathways)], ["pathways", "test"]):
        result = runner.invoke(main, command, env=env)
        assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
        assert f"lung.yaml:{number}:" in result.output and "is not a date in the calendar" in result.output
