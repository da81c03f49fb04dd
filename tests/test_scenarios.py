"""Journey scenarios for authors (issue 12 point 6): `carepath pathways test`, its diffs, coverage and errors.

The bundled scenarios (pathways/tests/*.yaml) run once per module; the small diagram in
tests/scenarios/pathways (an intake that is urgent or routine, then a review three months later)
is used for failures and coverage.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import main
from engine.errors import InvalidInputError
from engine.scenarios import ScenarioReport, load_scenarios, run_scenarios, runner
from engine.scenarios.reader import MAX_FILE_BYTES
from engine.settings import bundled_pathways_dir

REPO = Path(__file__).resolve().parents[1]
SMALL = Path(__file__).resolve().parent / "scenarios" / "pathways"

HEADER = """\
pathway: test_follow_up
scenarios:
  - name: a scenario
    patient: SYN-T-0002
    steps:
"""


@pytest.fixture(scope="module")
def bundled_report() -> ScenarioReport:
    pathways = REPO / "pathways"
    return run_scenarios(load_scenarios([pathways / "tests"], display_root=pathways), pathways, REPO / "rules")


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    """A copy of the small pathways folder, without its scenarios: each test writes its own."""
    folder = tmp_path / "pathways"
    shutil.copytree(SMALL, folder)
    shutil.rmtree(folder / "tests")
    (folder / "tests").mkdir()
    return folder


def _write(folder: Path, name: str, steps: str, header: str = HEADER) -> Path:
    path = folder / "tests" / name
    path.write_text(header + textwrap.indent(textwrap.dedent(steps), " " * 6), encoding="utf-8")
    return path


def _test(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["pathways", "test", *args])
    return result.exit_code, result.stdout, result.stderr


# --- the bundled pathways -------------------------------------------------------------------------------


def test_the_bundled_scenarios_pass(bundled_report: ScenarioReport) -> None:
    assert [r.failure.text(r.scenario.name) for r in bundled_report.failures if r.failure] == []
    assert len(bundled_report.results) >= 20
    assert {r.scenario.pathway for r in bundled_report.results} == {
        "breast_cancer",
        "prostate_cancer",
        "colorectal_cancer",
        "lung_cancer",
        "children_young_people_cancer",
        "general_cancer",
    }


def test_the_bundled_scenarios_take_every_sequence_flow_of_every_bundled_diagram(
    bundled_report: ScenarioReport,
) -> None:
    untaken = [flow.text() for flows in bundled_report.untaken().values() for flow in flows]
    assert untaken == [], "flows no scenario takes:\n" + "\n".join(untaken)
    # The premise: every diagram, the shared sub-pathways included, was read.
    assert len(bundled_report.flows.flows) == 19 and bundled_report.flows.count() > 400


def test_scenario_files_are_shipped_with_the_pathways() -> None:
    assert (bundled_pathways_dir() / "tests" / "breast.yaml").is_file()


# --- running, failures and their diffs ------------------------------------------------------------------


def test_a_passing_scenario_moves_the_clock_fires_timers_and_reports_coverage(small_folder: Path) -> None:
    shutil.copy(SMALL / "tests" / "routine.yaml", small_folder / "tests")
    code, out, _ = _test(str(small_folder))
    assert code == 0, out
    assert "1 scenario(s): 1 passed, 0 failed" in out
    # The urgent branch is not taken: both of its flows are named with the diagram's file and line.
    assert "test_follow_up (follow_up.bpmn): 2 of 7" in out
    assert "follow_up.bpmn:28: f_urgent (gw_urgent -> urgent_review)" in out
    assert "follow_up.bpmn:41: f_urgent_done (urgent_review -> review_due)" in out
    assert "f_routine" not in out and "Coverage: 5 of 7 sequence flows taken (71.4%)" in out
    code, out, _ = _test("--require-coverage", str(small_folder))
    assert code == 1


def test_taking_the_other_branch_completes_the_coverage(small_folder: Path) -> None:
    shutil.copy(SMALL / "tests" / "routine.yaml", small_folder / "tests")
    _write(
        small_folder,
        "urgent.yaml",
        """\
        - complete: intake
          data: {urgent: true}
        - expect:
            ready_only: [urgent_review]
        - complete: urgent_review
          data: {seen_on: $today}
        - until: 2026-04-16
        - complete: review
          data: {reviewed_on: $today}
        - expect: {status: completed}
        """,
    )
    code, out, _ = _test("--require-coverage", str(small_folder))
    assert code == 0, out
    assert "Coverage: 7 of 7 sequence flows taken (100.0%)" in out and "no scenario took" not in out


def test_a_wrong_expectation_fails_with_a_diff_and_the_step_file_and_line(small_folder: Path) -> None:
    _write(
        small_folder,
        "wrong.yaml",
        """\
        - complete: intake
          data: {urgent: false}
        - expect:
            timers: {review_due: 2026-05-15}
            status: running
        - after: P3M
        - expect:
            ready: [urgent_review]
        """,
    )
    code, out, _ = _test(str(small_folder))
    assert code == 1
    # Line 8 of the file is the first 'expect' (5 header lines, then the steps).
    assert "FAIL pathways/tests/wrong.yaml:8:9: a scenario: expect" in out
    assert "- expected timer review_due due 2026-05-15" in out
    assert "+ actual timer review_due due 2026-04-15T09:00:00+00:00" in out
    assert "1 scenario(s): 0 passed, 1 failed" in out


def test_a_scenario_stops_at_its_first_failing_step(small_folder: Path) -> None:
    _write(
        small_folder,
        "stops.yaml",
        """\
        - complete: intake
          data: {urgent: false}
        - after: P1M
        - expect:
            ready: [review]
        - complete: review
          data: {reviewed_on: $today}
        """,
    )
    code, out, _ = _test(str(small_folder))
    assert code == 1
    assert "FAIL pathways/tests/stops.yaml:9:9: a scenario: expect" in out
    assert "- expected ready: review\n" in out and "+ actual ready:   none" in out
    assert "complete review" not in out  # the steps after a failure do not run


def test_completing_a_task_that_is_not_ready_fails_with_what_is_ready(small_folder: Path) -> None:
    _write(
        small_folder,
        "not_ready.yaml",
        """\
        - complete: review
          data: {reviewed_on: $today}
        """,
    )
    code, out, _ = _test(str(small_folder))
    assert code == 1
    assert "FAIL pathways/tests/not_ready.yaml:6:9: a scenario: complete review" in out
    assert "- expected ready: review" in out and "+ actual ready:   intake" in out


def test_data_a_form_refuses_fails_the_step_with_the_field(small_folder: Path) -> None:
    _write(
        small_folder,
        "refused.yaml",
        """\
        - complete: intake
          data: {urgent: perhaps}
        """,
    )
    code, out, _ = _test(str(small_folder))
    assert code == 1
    assert "FAIL pathways/tests/refused.yaml:6:9: a scenario: complete intake" in out
    assert "refused:" in out and "/urgent" in out


def test_waiting_until_a_past_date_fails_the_step(small_folder: Path) -> None:
    _write(
        small_folder,
        "past.yaml",
        """\
        - until: 2025-12-01
        """,
    )
    code, out, _ = _test(str(small_folder))
    assert code == 1
    assert "FAIL pathways/tests/past.yaml:6:9: a scenario: until 2025-12-01" in out
    assert "is before the scenario's clock" in out


def test_status_and_completed_expectations(small_folder: Path) -> None:
    _write(
        small_folder,
        "status.yaml",
        """\
        - expect: {completed: true}
        """,
    )
    code, out, _ = _test(str(small_folder))
    assert code == 1
    assert "- expected status: completed" in out and "+ actual status:   running" in out


# --- malformed scenario files: every problem located, nothing runs ----------------------------------------

MALFORMED = {
    "not_yaml.yaml": ("pathway: x\nscenarios: [\n", 3, "not valid YAML"),
    "unknown_field.yaml": (
        HEADER + "      - complete: intake\n        dta: {urgent: true}\n",
        7,
        "unknown field 'dta' in a 'complete' step; did you mean 'data'?",
    ),
    "real_patient.yaml": (
        HEADER.replace("SYN-T-0002", "MRN-943476") + "      - after: P1D\n",
        4,
        "patient must be a synthetic reference starting with SYN-",
    ),
    "bad_duration.yaml": (HEADER + "      - after: 3 months\n", 6, "is not an ISO 8601 duration"),
    "too_long.yaml": (HEADER + "      - after: P100Y\n", 6, "longer than 20 years"),
    "two_actions.yaml": (HEADER + "      - {complete: intake, after: P1D}\n", 6, "a step has exactly one of"),
    "aliases.yaml": (HEADER + "      - complete: intake\n        data: &d {urgent: true}\n", 7, "anchors and aliases"),
    "no_steps.yaml": (
        "pathway: test_follow_up\nscenarios:\n  - name: x\n    patient: SYN-1\n",
        3,
        "a scenario needs 'steps'",
    ),
    "naive_start.yaml": (
        HEADER.replace("    steps:", "    start: 2026-01-15T09:00:00\n    steps:") + "      - after: P1D\n",
        5,
        "start needs a time zone",
    ),
    "not_a_number.yaml": (
        HEADER + "      - complete: intake\n        data: {score: .nan}\n",
        7,
        "data holds .nan or .inf",
    ),
    "bad_expect.yaml": (HEADER + "      - expect: {ready: intake, status: done}\n", 6, "expected ready as a list"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_scenario_file_is_refused_with_its_file_line_and_reason(small_folder: Path, name: str) -> None:
    text, line, message = MALFORMED[name]
    path = small_folder / "tests" / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInputError) as caught:
        load_scenarios([path])
    assert any(p.file == str(path) and p.line == line and message in p.message for p in caught.value.problems), [
        str(p) for p in caught.value.problems
    ]


def test_every_problem_of_a_file_is_reported_at_once(small_folder: Path) -> None:
    path = _write(
        small_folder,
        "many.yaml",
        """\
        - after: soon
        - expect: {status: done}
        - sned: hello
        """,
    )
    with pytest.raises(InvalidInputError) as caught:
        load_scenarios([path])
    assert [(p.line, p.message.split(";")[0][:30]) for p in caught.value.problems] == [
        (6, "'soon' is not an ISO 8601 dura"),
        (7, "unknown status 'done'"),
        (8, "a step has exactly one of comp"),
    ]


def test_bytes_that_are_not_utf8_are_located(small_folder: Path) -> None:
    path = small_folder / "tests" / "latin1.yaml"
    path.write_bytes(HEADER.encode() + "      - complete: intake\n        data: {note: caf\xe9}\n".encode("latin-1"))
    with pytest.raises(InvalidInputError) as caught:
        load_scenarios([path])
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.column) == (str(path), 7, 25) and "not UTF-8" in problem.message


def test_the_command_prints_located_problems_and_runs_nothing(small_folder: Path) -> None:
    path = small_folder / "tests" / "bad.yaml"
    path.write_text(HEADER + "      - after: tomorrow\n", encoding="utf-8")
    code, out, err = _test(str(path))
    assert code == 1 and out == ""
    assert "pathways/tests/bad.yaml:6:16: a scenario: 'tomorrow' is not an ISO 8601 duration" in err


def test_validate_checks_a_pathways_folders_scenarios_as_scenarios(small_folder: Path) -> None:
    _write(small_folder, "fine.yaml", "- complete: intake\n  data: {urgent: true}\n")
    result = CliRunner().invoke(main, ["validate", str(small_folder)])
    assert result.exit_code == 0, result.output  # not read as rule tests
    (small_folder / "tests" / "bad.yaml").write_text(HEADER + "      - send: 3\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(small_folder)])
    assert result.exit_code == 1
    assert "bad.yaml:6:15: a scenario: expected the message's name as text" in result.output


def test_an_incident_fails_the_step_with_its_element_and_message(small_folder: Path) -> None:
    shutil.copy(REPO / "tests" / "pathways" / "bad_condition.bpmn", small_folder)
    _write(
        small_folder,
        "incident.yaml",
        """\
        - complete: collect
          data: {pain: 7}
        - expect: {status: running}
        """,
        header=HEADER.replace("test_follow_up", "test_bad_condition"),
    )
    code, out, _ = _test(str(small_folder))
    assert code == 1
    assert "FAIL pathways/tests/incident.yaml:6:9: a scenario: complete collect" in out
    assert "+ the instance is error: incident at " in out and "pain_threshold" in out


def test_a_fault_inside_carepath_fails_its_scenario_by_type_and_the_others_still_run(
    small_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("SYN-T-0002 value that must not be printed")

    monkeypatch.setattr(runner, "fire_due_timers", broken)
    _write(small_folder, "a_fault.yaml", "- after: P1D\n")
    shutil.copy(SMALL / "tests" / "routine.yaml", small_folder / "tests")
    report = run_scenarios(load_scenarios([small_folder / "tests"]), small_folder, REPO / "rules")
    [faulty, other] = report.results
    assert faulty.failure is not None and other.failure is not None  # routine waits too: it fails the same way
    assert faulty.failure.lines == ("error: RuntimeError inside CarePath while running this step (please report it)",)
    assert "must not be printed" not in report.text()


def test_the_authors_example_in_pathways_readme_is_a_valid_scenario_file(tmp_path: Path) -> None:
    readme = (REPO / "pathways" / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Journey scenarios", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example, encoding="utf-8")
    [scenario] = load_scenarios([path])
    assert scenario.patient == "SYN-0101" and len(scenario.steps) == 10


def test_a_file_over_the_size_bound_is_refused_unread(small_folder: Path) -> None:
    path = small_folder / "tests" / "huge.yaml"
    path.write_text(HEADER + "      - complete: intake\n        data: {note: " + "x" * MAX_FILE_BYTES + "}\n")
    with pytest.raises(InvalidInputError) as caught:
        load_scenarios([path])
    [problem] = caught.value.problems
    assert problem.file == str(path) and "larger than 2 MB" in problem.message


def test_a_pathway_the_folder_does_not_define_is_located_and_nothing_runs(small_folder: Path) -> None:
    path = _write(
        small_folder, "unknown.yaml", "- after: P1D\n", header=HEADER.replace("test_follow_up", "test_folow_up")
    )
    code, out, err = _test(str(path))
    assert code == 1 and out == ""
    assert "pathways/tests/unknown.yaml:3:5: a scenario: no pathway 'test_folow_up' in " in err
    assert "did you mean 'test_follow_up'?" in err


def test_a_scenario_clock_cannot_run_more_than_a_century_past_its_start(small_folder: Path) -> None:
    _write(small_folder, "century.yaml", "- after: P20Y\n" * 6)
    code, out, _ = _test(str(small_folder))
    assert code == 1
    assert "FAIL pathways/tests/century.yaml:11:9: a scenario: after P20Y" in out
    assert "more than 100 years past the start" in out


def test_a_ready_task_in_another_lane_fails_with_the_lanes_shown(tmp_path: Path) -> None:
    path = tmp_path / "lane.yaml"
    path.write_text(
        textwrap.dedent("""\
        pathway: colorectal_cancer
        scenarios:
          - name: a warning sign before the named contact
            patient: SYN-T-0003
            data: {diagnosis: colorectal, diagnosis_date: 2026-01-12, age: 63, treatment_intent: curative}
            steps:
              - send: warning_sign_reported
                payload: {warning_sign: fever_on_treatment}
              - expect:
                  ready: [{task: triage, lane: Named contact}]
        """),
        encoding="utf-8",
    )
    report = run_scenarios(load_scenarios([path]), REPO / "pathways", REPO / "rules")
    [result] = report.results
    assert result.failure is not None and result.failure.loc.line == 9
    assert result.failure.lines == (
        "- expected ready: triage (lane 'Named contact')",
        "+ actual ready:   assign_contact (lane 'Key worker (clinical nurse specialist)'), "
        "triage (lane 'Acute oncology (24-hour line)')",
    )


def test_the_command_runs_the_configured_pathways_folders_scenarios_by_default(
    small_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(small_folder))
    code, out, err = _test()
    assert code == 1 and "no scenarios" in err  # an empty tests/ folder
    shutil.rmtree(small_folder / "tests")
    code, out, err = _test()
    assert code == 1 and f"no scenarios: {small_folder / 'tests'} is not a folder" in err
    shutil.copytree(SMALL / "tests", small_folder / "tests")
    code, out, err = _test()
    assert code == 0 and "1 scenario(s): 1 passed, 0 failed" in out, out + err


def test_the_command_never_opens_the_configured_database(
    small_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = tmp_path / "real" / "carepath.sqlite3"
    monkeypatch.setenv("CAREPATH_DATABASE_URL", f"sqlite:///{configured}")
    shutil.copy(SMALL / "tests" / "routine.yaml", small_folder / "tests")
    code, out, err = _test(str(small_folder))
    assert code == 0, out + err
    assert not configured.parent.exists() and "database:" not in err
