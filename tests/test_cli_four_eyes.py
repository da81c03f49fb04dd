"""Four eyes from the command line: ``carepath pathways deploy --as`` / ``activate --as`` / ``versions``,
and ``carepath token create --staff-id``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import main

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "pathways"
    shutil.copytree(TESTS / "pathways", folder)
    monkeypatch.setenv("CAREPATH_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(folder))
    monkeypatch.delenv("CAREPATH_FOUR_EYES", raising=False)
    return folder


def test_a_second_author_activates_what_the_first_deployed(environment: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["pathways", "deploy"])  # the bootstrap: the folder's versions are active
    assert first.exit_code == 0, first.output
    assert "test_assessment" in first.stdout and "(active)" in first.stdout
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    text = (environment / "assessment.bpmn").read_text()
    (bundle / "assessment.bpmn").write_text(text.replace('name="Holistic needs assessment"', 'name="HNA"'))
    deployed = runner.invoke(main, ["pathways", "deploy", str(bundle), "--as", "alice"])
    assert deployed.exit_code == 0, deployed.output
    [line] = [line for line in deployed.stdout.splitlines() if line.startswith("test_assessment ")]
    assert "pending" in line
    version = line.split()[1]

    own = runner.invoke(main, ["pathways", "activate", "test_assessment", version, "--as", "alice"])
    assert own.exit_code == 1 and "second author" in own.stderr
    nobody = runner.invoke(main, ["pathways", "activate", "test_assessment", version])
    assert nobody.exit_code == 1 and "names nobody" in nobody.stderr
    listed = runner.invoke(main, ["pathways", "versions", "test_assessment"]).stdout.splitlines()
    assert listed[0].startswith(f"{version} pending: deployed") and "cli:staff:alice" in listed[0]

    second = runner.invoke(main, ["pathways", "activate", "test_assessment", version, "--as", "bob"])
    assert second.exit_code == 0, second.output
    assert "activated by cli:staff:bob" in second.stdout
    listed = runner.invoke(main, ["pathways", "versions", "test_assessment"]).stdout.splitlines()
    assert listed[0].startswith(f"{version} active") and listed[1].split()[1] == "superseded:"
    refused = runner.invoke(main, ["pathways", "activate", "test_assessment", version, "--as", "carol!"])
    assert refused.exit_code == 2 and "--as" in refused.output


def test_a_token_can_name_its_holder(environment: Path) -> None:
    runner = CliRunner()
    held = runner.invoke(main, ["token", "create", "--role", "author", "--staff-id", "alice"])
    assert held.exit_code == 0, held.output
    system = runner.invoke(main, ["token", "create", "--role", "system", "--staff-id", "alice"])
    assert system.exit_code == 2 and "X-On-Behalf-Of" in system.output


def test_carepath_migrate_moves_instances_only_under_an_approved_request(environment: Path, tmp_path: Path) -> None:
    from engine import CarePath, Settings

    runner = CliRunner()
    assert runner.invoke(main, ["pathways", "deploy"]).exit_code == 0
    app = CarePath(Settings.from_env())
    try:
        started = app.instances.start("test_assessment", "MRN-CLI-1", "system:test")
        text = (environment / "assessment.bpmn").read_text()
        [new] = app.catalog.deploy_upload(
            {"assessment.bpmn": text.replace('name="Holistic needs assessment"', 'name="HNA"').encode()},
            "cli:staff:alice",
        )
        app.catalog.activate("test_assessment", new.version, "cli:staff:bob")
    finally:
        app.close()

    alone = runner.invoke(main, ["migrate", "test_assessment", "--as", "alice"])
    assert alone.exit_code == 1 and "migration request" in alone.stderr
    asked = runner.invoke(main, ["migrate", "test_assessment", "--request", "--as", "alice"])
    assert asked.exit_code == 0, asked.output
    assert f"{started.id} (MRN-CLI-1): would move" in asked.stdout
    request_id = asked.stdout.split("migration request ")[1].split(":")[0]
    own = runner.invoke(main, ["migrate", "--approve", request_id, "--as", "alice"])
    assert own.exit_code == 1 and "second author" in own.stderr
    approved = runner.invoke(main, ["migrate", "--approve", request_id, "--as", "bob"])
    assert approved.exit_code == 0, approved.output
    assert f"{started.id} (MRN-CLI-1): moved" in approved.stdout
    assert runner.invoke(main, ["migrate", "--approve", request_id, "test_assessment"]).exit_code == 2


def test_carepath_rules_deploy_records_a_pending_version_a_second_author_activates(
    environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(TESTS.parent / "rules", rules, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    monkeypatch.setenv("CAREPATH_RULES_DIR", str(rules))
    runner = CliRunner()
    first = runner.invoke(main, ["rules", "deploy"])
    assert first.exit_code == 0 and "supportive_care" in first.stdout and "(active)" in first.stdout, first.output
    (rules / "supportive_care.yaml").write_text((rules / "supportive_care.yaml").read_text() + "\n# reviewed\n")
    second = runner.invoke(main, ["rules", "deploy", "--as", "alice"])
    assert second.exit_code == 0 and "(pending)" in second.stdout, second.output
    version = second.stdout.split()[1]
    own = runner.invoke(main, ["rules", "activate", "supportive_care", version, "--as", "alice"])
    assert own.exit_code == 1 and "second author" in own.stderr
    done = runner.invoke(main, ["rules", "activate", "supportive_care", version, "--as", "bob"])
    assert done.exit_code == 0 and "activated by cli:staff:bob" in done.stdout, done.output
    listed = runner.invoke(main, ["rules", "versions", "supportive_care"]).stdout.splitlines()
    assert listed[0].startswith(f"{version} active") and " superseded: " in listed[1]


def test_rules_deploy_of_a_broken_file_names_each_problem(
    environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It printed only "nothing recorded: no rule set could be loaded", though docs/rules.md says
    # the refusal names the file and line.
    rules = tmp_path / "rules"
    shutil.copytree(TESTS.parent / "rules", rules, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    rule_file = rules / "supportive_care.yaml"
    rule_file.write_text(rule_file.read_text().replace("priority:", "priorty:", 1))
    monkeypatch.setenv("CAREPATH_RULES_DIR", str(rules))
    result = CliRunner().invoke(main, ["rules", "deploy", "--as", "alice"])
    assert result.exit_code == 1
    assert "nothing recorded" in result.stderr
    assert f"{rule_file}:" in result.stderr and "unknown field 'priorty' in a rule; did you mean 'priority'?" in (
        result.stderr
    )


def test_rules_deploy_of_invalid_warning_signs_is_refused_where_validate_locates_them(
    environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The refusal named "catalogues/warning_signs.yaml", not the file validate names: an author with
    # two rules folders could not tell which one was refused.
    rules = tmp_path / "rules"
    shutil.copytree(TESTS.parent / "rules", rules, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    signs = rules / "catalogues" / "warning_signs.yaml"
    signs.write_text(signs.read_text().replace("urgency: emergency", "urgency: asap", 1))
    line = next(n for n, x in enumerate(signs.read_text().splitlines(), 1) if "urgency: asap" in x)
    monkeypatch.setenv("CAREPATH_RULES_DIR", str(rules))
    runner = CliRunner()
    validated = runner.invoke(main, ["validate", str(rules)])
    assert validated.exit_code == 1 and f"{signs}:{line}:" in validated.output, validated.output
    result = runner.invoke(main, ["rules", "deploy", "--as", "alice"])
    assert result.exit_code == 1 and "nothing recorded" in result.stderr
    assert f"{signs}:{line}:" in result.stderr and "unknown urgency 'asap'" in result.stderr, result.stderr
    # and says it was the catalogue, not each rule set, that could not be loaded
    assert f"the catalogue in {rules / 'catalogues'} could not be loaded" in result.stderr, result.stderr
    listed = runner.invoke(main, ["rules", "versions", "supportive_care"])
    assert "supportive_care" not in listed.stdout or listed.exit_code != 0, listed.output
