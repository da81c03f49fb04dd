"""One gate (issue 12, point 1): a deploy -- from the pathways folder (CLI, serve) or an upload
(``POST /v1/pathways``) -- runs exactly the checks of ``carepath validate``, refuses on every error
with the same located problems, stores nothing then, and deploys with its warnings otherwise."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from start_schema_note import validate_paths, validate_upload, without_note

from api.cli import main
from engine import CarePath, ManualClock, Settings
from engine.db.models import PathwayVersion
from engine.errors import DiagramError, Problem
from engine.pathways.validation import errors_in, rule_set_names

TESTS = Path(__file__).resolve().parent
BROKEN = TESTS / "diagrams" / "broken"
OK = TESTS / "diagrams" / "ok"
CALLS = TESTS / "diagrams" / "calls_checked_sub"
RULES = TESTS.parent / "rules"
# Problems with nothing to name but the file and line: the text is not (yet) a BPMN diagram.
NO_ELEMENT = {"xml-syntax", "not-bpmn", "encoding", "dtd", "not-found"}

IMPLIED = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <bpmn:process id="{pid}" name="Implied">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def _engine(folder: Path, database: Path) -> CarePath:
    settings = Settings(database_url=f"sqlite:///{database}", pathways_dir=folder, rules_dir=RULES, four_eyes=False)
    return CarePath(settings, ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC)), upgrade=True)


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CarePath]:
    """An engine whose pathways folder is empty: what an upload names resolves in the upload only."""
    root = tmp_path_factory.mktemp("gate")
    (root / "library").mkdir()
    app = _engine(root / "library", root / "db.sqlite3")
    try:
        yield app
    finally:
        app.close()


def _versions(app: CarePath) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(PathwayVersion)) or 0)


def _where(problems: list[Problem]) -> list[tuple[Any, ...]]:
    return [(p.code, p.line, p.element, p.message, p.severity) for p in without_note(problems)]


@pytest.mark.parametrize("name", sorted(p.name for p in BROKEN.glob("*.bpmn")))
def test_an_upload_is_refused_exactly_as_validate_refuses_it(uploads: CarePath, name: str) -> None:
    files = {name: (BROKEN / name).read_bytes(), **{p.name: p.read_bytes() for p in BROKEN.glob("*.json")}}
    known = rule_set_names(RULES)
    validated = validate_paths([BROKEN / name], known_rule_sets=known)
    assert _where(validate_upload(files, known_rule_sets=known)) == _where(validated)
    before = _versions(uploads)
    if not errors_in(validated):  # a warning only (an operator this server does not run): deployed
        deployed = uploads.catalog.deploy_upload(files, "author")
        assert _where(deployed.warnings) == _where(validated) and _versions(uploads) == before + 1
        return
    with pytest.raises(DiagramError) as refused:
        uploads.catalog.deploy_upload(files, "author")
    assert _where(refused.value.problems) == _where(validated)
    assert all(p.file == name for p in refused.value.problems)
    assert _versions(uploads) == before  # nothing stored


@pytest.mark.parametrize("name", sorted(p.name for p in BROKEN.glob("*.bpmn")))
def test_every_refusal_is_located(name: str) -> None:
    for problem in errors_in(validate_paths([BROKEN / name], known_rule_sets=rule_set_names(RULES))):
        assert problem.file and problem.line, problem
        assert problem.element or problem.code in NO_ELEMENT, problem
        assert str(problem).startswith(f"{problem.file}:{problem.line}: ")


def test_validating_a_file_checks_the_diagrams_it_calls_as_deploying_its_bundle_does(uploads: CarePath) -> None:
    """Found by the third-party census (bench/thirdparty.py): ``validate FILE`` resolved the calls
    into its folder but did not check the called diagrams, so a pathway whose sub-pathway held an
    unsafe script validated and its bundle was then refused at deploy. A diagram nothing calls
    (not_called.bpmn) stays out of it."""
    validated = validate_paths([CALLS / "pathway.bpmn"])
    assert [(Path(p.file or "").name, p.line, p.element, p.code) for p in errors_in(validated)] == [
        ("score.bpmn", 8, "Activity_score", "unsafe-expression")
    ]
    bundle = {
        "pathway.bpmn": (CALLS / "pathway.bpmn").read_bytes(),
        "shared/triage.bpmn": (CALLS / "triage.bpmn").read_bytes(),
        "shared/score.bpmn": (CALLS / "score.bpmn").read_bytes(),
    }
    with pytest.raises(DiagramError) as refused:
        uploads.catalog.deploy_upload(bundle, "author")
    assert [(p.file, p.line, p.element, p.code) for p in errors_in(refused.value.problems)] == [
        ("shared/score.bpmn", 8, "Activity_score", "unsafe-expression")
    ]


def test_the_folder_is_refused_as_validate_refuses_it_and_nothing_is_deployed(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(OK / "bpmnio.bpmn", library)
    shutil.copy(BROKEN / "gateway_flow_without_condition.bpmn", library)
    app = _engine(library, tmp_path / "db.sqlite3")
    try:
        with pytest.raises(DiagramError) as refused:
            app.catalog.sync_library()
        validated = validate_paths([library], pathways_root=library, known_rule_sets=rule_set_names(RULES))
        assert _where(refused.value.problems) == _where(validated) != []
        assert _versions(app) == 0  # the good pathway waits for the bad one: all or nothing
    finally:
        app.close()


def test_cli_deploy_prints_what_validate_prints(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(BROKEN / "condition_imports_os.bpmn", library)
    shutil.copy(BROKEN / "empty_timer.bpmn", library)
    env = {
        "CAREPATH_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CAREPATH_PATHWAYS_DIR": str(library),
        "CAREPATH_RULES_DIR": str(RULES),
        "CAREPATH_FOUR_EYES": "off",
    }
    runner = CliRunner()
    validated = runner.invoke(main, ["validate", str(library)], env=env)
    deployed = runner.invoke(main, ["pathways", "deploy"], env=env)
    assert validated.exit_code == 1 and deployed.exit_code == 1
    located = [line for line in validated.output.splitlines() if ".bpmn:" in line]
    assert len(located) == 4  # each fault, and each file's note that it has no start data schema
    assert [line for line in deployed.output.splitlines() if ".bpmn:" in line] == located
    assert "nothing deployed" in deployed.output


def test_a_process_without_is_executable_runs_and_the_author_is_told(uploads: CarePath) -> None:
    files = {"implied.bpmn": IMPLIED.format(pid="implied_pathway").encode()}
    [warning] = validate_upload(files)
    assert (warning.code, warning.severity, warning.element, warning.line) == (
        "executable-implied",
        "warning",
        "implied_pathway",
        3,
    )
    deployed = uploads.catalog.deploy_upload(files, "author")
    assert [v.pathway_id for v in deployed] == ["implied_pathway"]
    assert _where(deployed.warnings) == _where([warning])
    assert uploads.instances.start("implied_pathway", "MRN-GATE-1", "system:test").status == "completed"


def test_a_file_with_no_executable_process_is_refused_with_the_reason(uploads: CarePath) -> None:
    content = IMPLIED.format(pid="drawn_only").replace('name="Implied"', 'name="Implied" isExecutable="false"')
    with pytest.raises(DiagramError) as refused:
        uploads.catalog.deploy_upload({"drawn.bpmn": content.encode()}, "author")
    [problem] = refused.value.problems
    assert (problem.code, problem.file, problem.line, problem.element) == (
        "no-executable-process",
        "drawn.bpmn",
        3,
        "drawn_only",
    )
    assert 'isExecutable="false"' in problem.message
    empty = (
        b'<?xml version="1.0"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        b'id="d" targetNamespace="x"><bpmn:message id="m" name="m" /></bpmn:definitions>'
    )
    [problem] = validate_upload({"empty.bpmn": empty})
    assert problem.code == "no-executable-process" and "defines no bpmn:process" in problem.message


def test_unknown_operators_are_warnings_checked_against_the_servers_own(uploads: CarePath) -> None:
    content = (TESTS / "pathways" / "service_step.bpmn").read_bytes()
    files = {"service_step.bpmn": content}
    [warning] = validate_upload(files, known_operators=uploads.catalog.known_operators())
    assert (warning.code, warning.severity, warning.element) == ("unknown-operator", "warning", "notify")
    uploads.instances.operators["test.notify"] = lambda context, task, params: {"sent": True}
    try:
        assert validate_upload(files, known_operators=uploads.catalog.known_operators()) == []
        assert _where(uploads.catalog.deploy_upload(files, "author").warnings) == []
    finally:
        del uploads.instances.operators["test.notify"]


def test_validate_exits_zero_with_warnings_only_and_prints_them(tmp_path: Path) -> None:
    (tmp_path / "implied.bpmn").write_text(IMPLIED.format(pid="implied_cli"))
    (tmp_path / "implied.start.schema.json").write_text('{"type": "object"}')
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "implied.bpmn")])
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'implied.bpmn'}:3: implied_cli: warning: process 'implied_cli' does not say" in result.output
    assert "no problems found, 1 warning(s)" in result.output


def test_serve_refuses_a_folder_that_does_not_pass_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the server started")

    monkeypatch.setattr("flask.Flask.run", never)
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(BROKEN / "condition_imports_os.bpmn", library)
    env = {
        "CAREPATH_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CAREPATH_PATHWAYS_DIR": str(library),
        "CAREPATH_RULES_DIR": str(RULES),
        "CAREPATH_FOUR_EYES": "off",
    }
    result = CliRunner().invoke(main, ["serve"], env=env)
    assert result.exit_code == 1, result.output
    assert (
        f"{library / 'condition_imports_os.bpmn'}:24: Flow_high: expression outside the safe language" in result.output
    )
    assert "refusing to start, nothing deployed" in result.output
