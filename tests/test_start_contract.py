"""The start contract (issue 17, point 1): each pathway's start data schema is part of its version,
a start that fails it creates nothing, a clinician corrects an instance's data and retries its
incident, and a patient runs a pathway once at a time -- held by the database against a race."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import engine.instances.service as service_module
from engine import CarePath, InstanceExistsError, InvalidInputError, ManualClock, Settings, StartDataError
from engine.db.models import InstanceEvent, PathwayInstance, PathwayVersion
from engine.directory import load_service_directory
from engine.instances.timers import fire_due_timers
from engine.pathways.sources import PathwayLibrary, version_of
from engine.pathways.validation import validate_paths, validate_upload
from engine.settings import HEALTH_SYSTEMS, bundled_pathways_dir, bundled_service_directory

CONTRACT = Path(__file__).parent / "diagrams" / "contract"
FILES = {
    name: (CONTRACT / name).read_bytes() for name in ("contract.bpmn", "contract.start.schema.json", "review.json")
}
GOOD = {"diagnosis_date": "2026-01-12", "age": 52}
CLINICIAN = "clinician:tok_test"


@pytest.fixture
def contract(carepath: CarePath) -> CarePath:
    carepath.catalog.deploy_upload(FILES, "author:tok_test")
    return carepath


def _counts(app: CarePath) -> tuple[int, int]:
    with app.sessions() as session:
        return (
            int(session.scalar(select(func.count()).select_from(PathwayInstance)) or 0),
            int(session.scalar(select(func.count()).select_from(InstanceEvent)) or 0),
        )


# --- the schema is part of the version --------------------------------------------------------


def test_every_bundled_pathway_declares_what_its_diagrams_read_at_the_start() -> None:
    library = PathwayLibrary(bundled_pathways_dir())
    for pathway_id in library.pathway_ids():
        source = library.source(pathway_id)
        assert source.start_schema is not None, pathway_id
        schema = json.loads(source.start_schema)
        # add_months(diagnosis_date, ...) in the reviews and the survey; age, diagnosis and the intent
        # in the HNA's patient context and the care branch's split.
        assert set(schema["required"]) >= {"diagnosis", "diagnosis_date", "age", "treatment_intent"}, pathway_id
        assert schema["properties"]["diagnosis_date"]["format"] == "date"


def test_the_start_schema_is_one_of_the_files_the_version_hashes() -> None:
    source = PathwayLibrary(bundled_pathways_dir()).source("breast_cancer")
    assert "breast.start.schema.json" in source.files
    without = {name: content for name, content in source.files.items() if name != "breast.start.schema.json"}
    assert version_of(without) != source.version


def test_the_schema_is_stored_with_the_version_and_shown(contract: CarePath) -> None:
    assert contract.catalog.start_schema("test_contract") == json.loads(FILES["contract.start.schema.json"])
    with contract.sessions() as session:
        row = session.scalars(select(PathwayVersion).where(PathwayVersion.pathway_id == "test_contract")).one()
        assert json.loads(row.start_schema)["required"] == ["diagnosis_date", "age"]
    # A pathway without one accepts any start data object.
    assert contract.catalog.start_schema("test_assessment") is None


def test_validate_warns_of_a_pathway_without_a_schema_and_refuses_a_broken_one() -> None:
    bare = {"contract.bpmn": FILES["contract.bpmn"], "review.json": FILES["review.json"]}
    [note] = validate_upload(bare)
    assert (note.code, note.severity, note.file) == ("start-schema-missing", "warning", "contract.bpmn")
    assert validate_upload(FILES) == []
    broken = {**FILES, "contract.start.schema.json": b'{"type": "object", "required": "age"}'}
    [problem] = validate_upload(broken)
    assert (problem.code, problem.severity, problem.file) == ("start-schema", "error", "contract.start.schema.json")
    not_an_object = {**FILES, "contract.start.schema.json": b'{"type": "array"}'}
    assert [p.code for p in validate_upload(not_an_object)] == ["start-schema"]


def test_a_shared_sub_pathway_needs_no_schema_of_its_own() -> None:
    shared = bundled_pathways_dir() / "shared" / "cancer_care_reviews.bpmn"
    assert validate_paths([shared], pathways_root=bundled_pathways_dir()) == []


# --- a start that fails the schema creates nothing -------------------------------------------------


def test_a_start_failing_the_schema_names_every_field_and_creates_nothing(contract: CarePath) -> None:
    before = _counts(contract)
    with pytest.raises(StartDataError) as refused:
        contract.instances.start("test_contract", "MRN-1", "system:t", {"age": "fifty", "diagnosis_date": 20260112})
    assert [(p.field, p.code) for p in refused.value.problems] == [
        ("/data/age", "type"),
        ("/data/diagnosis_date", "type"),
    ]
    assert "fifty" not in str(refused.value)  # values are patient data: never quoted
    with pytest.raises(StartDataError) as missing:
        contract.instances.start("test_contract", "MRN-1", "system:t")
    assert sorted(p.field for p in missing.value.problems) == ["/data/age", "/data/diagnosis_date"]
    assert _counts(contract) == before
    assert contract.instances.start("test_contract", "MRN-1", "system:t", GOOD).status == "running"


@pytest.mark.parametrize("pathway_id", ["test_contract", "test_assessment"])  # with a schema, and without one
@pytest.mark.parametrize("unknown", ["wales", "Sweden", "", 1, None, ["england"]])
def test_a_health_system_of_no_directory_section_is_refused_at_the_start(
    contract: CarePath, pathway_id: str, unknown: Any
) -> None:
    # The patient's numbers come from their health system's section of the service directory: a value
    # naming none was silently passed over for the deployment's. Refused, located, never quoted.
    before = _counts(contract)
    with pytest.raises(StartDataError) as refused:
        contract.instances.start(pathway_id, "MRN-1", "system:t", {**GOOD, "health_system": unknown})
    assert [(p.field, p.code) for p in refused.value.problems] == [("/data/health_system", "enum")]
    [problem] = refused.value.problems
    assert "england" in problem.message and "sweden" in problem.message
    if unknown == "wales":
        assert "wales" not in str(refused.value) and all("wales" not in p.message for p in refused.value.problems)
    assert _counts(contract) == before
    for known in ("england", "sweden"):
        assert contract.instances.start(pathway_id, f"MRN-{known}", "system:t", {**GOOD, "health_system": known})


def test_without_a_schema_a_correction_cannot_name_a_health_system_of_no_section(tmp_path: Path) -> None:
    bare = {"contract.bpmn": FILES["contract.bpmn"], "review.json": FILES["review.json"]}
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", pathways_dir=tmp_path, four_eyes=False)
    app = CarePath(settings, ManualClock(datetime(2026, 1, 15, tzinfo=UTC)), upgrade=True)
    try:
        app.catalog.deploy_upload(bare, "author:t")
        view = app.instances.start("test_contract", "MRN-4", "system:t", GOOD)
        with pytest.raises(StartDataError) as refused:
            app.instances.correct_data(view.id, {"health_system": "wales"}, "entered_in_error", CLINICIAN)
        assert [p.field for p in refused.value.problems] == ["/data/health_system"]
        assert app.instances.correct_data(view.id, {"health_system": "sweden"}, "entered_in_error", CLINICIAN)
    finally:
        app.close()


def test_bundled_pathways_refuse_empty_start_data(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", pathways_dir=bundled_pathways_dir())
    app = CarePath(settings, ManualClock(datetime(2026, 1, 15, tzinfo=UTC)), upgrade=True)
    try:
        app.catalog.sync_library()
        with pytest.raises(StartDataError) as refused:
            app.instances.start("breast_cancer", "SYN-0001", "system:t", {})
        assert {p.field for p in refused.value.problems} == {
            "/data/diagnosis",
            "/data/diagnosis_date",
            "/data/age",
            "/data/treatment_intent",
        }
        with pytest.raises(StartDataError) as bad_date:
            app.instances.start(
                "breast_cancer",
                "SYN-0001",
                "system:t",
                {"diagnosis": "breast", "diagnosis_date": "12/01/2026", "age": 52, "treatment_intent": "curative"},
            )
        assert {p.field for p in bad_date.value.problems} == {"/data/diagnosis_date"}  # format and pattern
    finally:
        app.close()


def test_every_bundled_pathway_declares_the_health_system_as_the_directorys_sections() -> None:
    """The patient's health system (engine.directory ``for_patient``) may be given at the start
    and corrected later: a correction names only the schema's fields, so the schema declares it, optional,
    with the values the start accepts (engine.instances.forms) and the bundled directory has."""
    sections = set(load_service_directory(bundled_service_directory()).systems)
    library = PathwayLibrary(bundled_pathways_dir())
    for pathway_id in library.pathway_ids():
        schema = json.loads(library.source(pathway_id).start_schema or "{}")
        assert schema["properties"]["health_system"]["enum"] == list(HEALTH_SYSTEMS), pathway_id
        assert set(HEALTH_SYSTEMS) == sections, pathway_id
        assert "health_system" not in schema["required"], pathway_id


def test_a_bundled_pathways_health_system_can_be_corrected_to_a_section_only(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", pathways_dir=bundled_pathways_dir())
    app = CarePath(settings, ManualClock(datetime(2026, 1, 15, tzinfo=UTC)), upgrade=True)
    start = {"diagnosis": "breast", "diagnosis_date": "2026-01-12", "age": 52, "treatment_intent": "curative"}
    try:
        app.catalog.sync_library()
        view = app.instances.start("breast_cancer", "SYN-0001", "system:t", start)
        with pytest.raises(StartDataError) as refused:
            app.instances.correct_data(view.id, {"health_system": "wales"}, "entered_in_error", CLINICIAN)
        assert [(p.field, p.code) for p in refused.value.problems] == [("/data/health_system", "enum")]
        app.instances.correct_data(view.id, {"health_system": "sweden"}, "entered_in_error", CLINICIAN)
        assert app.instances.instance_data(view.id)["health_system"] == "sweden"
    finally:
        app.close()


# --- correcting data, then retrying the incident ------------------------------------------------------


def test_data_corrected_after_an_incident_lets_the_retry_run_on(contract: CarePath) -> None:
    # Passes the schema (any text of 20 characters) but the first step cannot count from it.
    view = contract.instances.start("test_contract", "MRN-2", "system:t", {"diagnosis_date": "soon", "age": 52})
    assert view.status == "error" and view.incident["element"] == "due"
    view = contract.instances.correct_data(
        view.id, {"diagnosis_date": "2026-01-12"}, "entered_in_error", CLINICIAN, view.version
    )
    assert view.status == "error"  # nothing runs until the retry
    view = contract.instances.retry(view.id, CLINICIAN, view.version)
    assert view.status == "running" and [t["element"] for t in view.ready_tasks] == ["review"]
    assert contract.instances.instance_data(view.id)["review_due"] == "2026-04-12"
    with contract.sessions() as session:
        events = session.scalars(
            select(InstanceEvent).where(InstanceEvent.instance_id == view.id).order_by(InstanceEvent.seq)
        ).all()
    corrected = next(e for e in events if e.type == "data_corrected")
    payload = json.loads(corrected.payload)
    assert corrected.actor == CLINICIAN
    assert payload["fields"] == ["diagnosis_date"] and payload["reason"] == "entered_in_error"
    assert payload["data_digest"].startswith("sha256:")
    assert all("2026-01-12" not in e.payload for e in events)  # the values are never in the trail
    assert [e.type for e in events].index("data_corrected") < [e.type for e in events].index("retried")


def test_a_correction_must_pass_the_schema_and_name_only_its_fields(contract: CarePath) -> None:
    view = contract.instances.start("test_contract", "MRN-3", "system:t", {"diagnosis_date": "soon", "age": 52})
    with pytest.raises(StartDataError) as refused:
        contract.instances.correct_data(view.id, {"age": -1, "worst": 9}, "fix", CLINICIAN)
    assert [p.field for p in refused.value.problems] == ["/data/worst"]
    with pytest.raises(StartDataError) as out_of_range:
        contract.instances.correct_data(view.id, {"age": -1}, "fix", CLINICIAN)
    assert [p.field for p in out_of_range.value.problems] == ["/data/age"]
    for data, reason in (({}, "fix"), ({"age": 50}, " "), ({"_private": 1}, "fix"), ({"age": 50}, "x" * 65)):
        with pytest.raises(InvalidInputError):
            contract.instances.correct_data(view.id, data, reason, CLINICIAN)


@pytest.mark.parametrize("reason", ["Jane Doe's date of birth is 1961-04-23, not 1961-04-32", "Typo", "", None])
def test_a_correction_reason_is_a_code_never_free_text(contract: CarePath, reason: str | None) -> None:
    """The reason is recorded in the event trail with the correction's digest: free text (which could
    hold the very values the digest keeps out) is refused, naming the field, and nothing is recorded;
    the same correction with a code goes through."""
    view = contract.instances.start("test_contract", "MRN-8", "system:t", {"diagnosis_date": "soon", "age": 52})
    with pytest.raises(InvalidInputError) as refused:
        contract.instances.correct_data(view.id, {"age": 53}, reason, CLINICIAN)  # type: ignore[arg-type]
    assert [p.field for p in refused.value.problems] == ["/reason"]
    assert "Jane" not in str(refused.value)
    assert contract.instances.get(view.id).version == view.version
    contract.instances.correct_data(view.id, {"age": 53}, "typo", CLINICIAN)
    with contract.sessions() as session:
        corrections = session.scalars(
            select(InstanceEvent.payload).where(
                InstanceEvent.instance_id == view.id, InstanceEvent.type == "data_corrected"
            )
        ).all()
    assert [json.loads(p)["reason"] for p in corrections] == ["typo"]


def test_without_a_schema_an_empty_start_fails_later_and_a_correction_repairs_it(tmp_path: Path) -> None:
    bare = {"contract.bpmn": FILES["contract.bpmn"], "review.json": FILES["review.json"]}
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", pathways_dir=tmp_path, four_eyes=False)
    app = CarePath(settings, ManualClock(datetime(2026, 1, 15, tzinfo=UTC)), upgrade=True)
    try:
        app.catalog.deploy_upload(bare, "author:t")
        view = app.instances.start("test_contract", "MRN-4", "system:t", {})
        assert view.status == "error"
        view = app.instances.correct_data(view.id, {"diagnosis_date": "2026-01-12"}, "missing_at_referral", CLINICIAN)
        assert app.instances.retry(view.id, CLINICIAN).status == "running"
    finally:
        app.close()


# --- one running instance per patient and pathway ------------------------------------------------


def test_a_second_start_names_the_running_instance(contract: CarePath) -> None:
    first = contract.instances.start("test_contract", "MRN-5", "system:t", GOOD)
    before = _counts(contract)
    with pytest.raises(InstanceExistsError) as refused:
        contract.instances.start("test_contract", "MRN-5", "system:t", GOOD)
    assert refused.value.instance_id == first.id
    assert _counts(contract) == before
    # Another pathway, or another patient, is another instance; an ended one does not count.
    contract.instances.start("test_assessment", "MRN-5", "system:t")
    contract.instances.start("test_contract", "MRN-6", "system:t", GOOD)
    contract.instances.cancel(first.id, "system:t", "entered_in_error")
    assert contract.instances.start("test_contract", "MRN-5", "system:t", GOOD).id != first.id


def test_an_instance_in_error_or_suspended_still_counts(contract: CarePath) -> None:
    failed = contract.instances.start("test_contract", "MRN-7", "system:t", {"diagnosis_date": "soon", "age": 1})
    assert failed.status == "error"
    with pytest.raises(InstanceExistsError):
        contract.instances.start("test_contract", "MRN-7", "system:t", GOOD)


def test_the_database_refuses_a_second_start_that_missed_the_check(
    contract: CarePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a concurrent start sees: the check found nothing (the other had not committed), and the
    unique index refuses the insert; the caller still learns which instance is running."""
    first = contract.instances.start("test_contract", "MRN-8", "system:t", GOOD)
    real = service_module.active_instance_of
    calls: list[str] = []

    def blind_first(session: Any, pathway_id: str, patient_ref: str) -> str | None:
        calls.append(patient_ref)
        return None if len(calls) == 1 else real(session, pathway_id, patient_ref)

    monkeypatch.setattr(service_module, "active_instance_of", blind_first)
    before = _counts(contract)
    with pytest.raises(InstanceExistsError) as refused:
        contract.instances.start("test_contract", "MRN-8", "system:t", GOOD)
    assert refused.value.instance_id == first.id and len(calls) == 2
    assert _counts(contract) == before


def test_two_concurrent_starts_cannot_both_win(contract: CarePath) -> None:
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def start() -> None:
        barrier.wait()
        try:
            results.append(contract.instances.start("test_contract", "MRN-9", "system:t", GOOD))
        except Exception as exc:  # noqa: BLE001 - the loser's error is what is checked
            results.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1 and len(lost) == 1, results
    assert isinstance(lost[0], InstanceExistsError) and lost[0].instance_id == won[0].id
    with contract.sessions() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(PathwayInstance).where(PathwayInstance.patient_ref == "MRN-9")
            )
            == 1
        )


def test_a_deployment_may_allow_more_explicitly(test_settings: Settings, clock: ManualClock) -> None:
    settings = Settings(
        database_url=test_settings.database_url,
        pathways_dir=test_settings.pathways_dir,
        allow_concurrent_instances=True,
    )
    assert Settings.from_env({"CAREPATH_ALLOW_CONCURRENT_INSTANCES": "1"}).allow_concurrent_instances
    app = CarePath(settings, clock)
    try:
        first = app.instances.start("test_assessment", "MRN-10", "system:t")
        second = app.instances.start("test_assessment", "MRN-10", "system:t")
        assert first.id != second.id
    finally:
        app.close()


# A timer, then a choice on the data: start data can be corrected while the timer waits.
_WAIT_THEN_CHOOSE = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs_wait" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="test_wait_then_choose" name="Wait, then choose" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="week" />
    <bpmn:intermediateCatchEvent id="week" name="A week later">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition id="timer_week">
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">P7D</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="week" targetRef="choose" />
    <bpmn:exclusiveGateway id="choose" name="Which route?" default="to_a">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>to_a</bpmn:outgoing><bpmn:outgoing>to_b</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="to_a" sourceRef="choose" targetRef="task_a" />
    <bpmn:sequenceFlow id="to_b" sourceRef="choose" targetRef="task_b">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">route == "b"</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:manualTask id="task_a" name="Route A">
      <bpmn:incoming>to_a</bpmn:incoming><bpmn:outgoing>fa</bpmn:outgoing>
    </bpmn:manualTask>
    <bpmn:manualTask id="task_b" name="Route B">
      <bpmn:incoming>to_b</bpmn:incoming><bpmn:outgoing>fb</bpmn:outgoing>
    </bpmn:manualTask>
    <bpmn:sequenceFlow id="fa" sourceRef="task_a" targetRef="end" />
    <bpmn:sequenceFlow id="fb" sourceRef="task_b" targetRef="end" />
    <bpmn:endEvent id="end"><bpmn:incoming>fa</bpmn:incoming><bpmn:incoming>fb</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def test_data_corrected_while_a_timer_waits_is_what_the_steps_after_it_read(
    carepath: CarePath, clock: ManualClock
) -> None:
    # A waiting timer takes its parent's data again whenever it is refreshed: a correction written into the
    # waiting task alone was lost when the timer fired, and the choice after it read the old value.
    carepath.catalog.deploy_upload({"wait_then_choose.bpmn": _WAIT_THEN_CHOOSE}, "author:tok_test")
    view = carepath.instances.start("test_wait_then_choose", "MRN-5", "system:t", {"route": "a"})
    assert view.ready_tasks == [] and view.status == "running"
    carepath.instances.correct_data(view.id, {"route": "b"}, "entered_in_error", CLINICIAN)
    clock.advance(timedelta(days=8))
    assert fire_due_timers(carepath.instances) == 1
    assert [t["element"] for t in carepath.instances.get(view.id).ready_tasks] == ["task_b"]
    assert carepath.instances.instance_data(view.id)["route"] == "b"


# Three timers: a date worked out from the date of diagnosis, a date worked out from today, and a duration.
_THREE_TIMERS = (Path(__file__).parent / "diagrams" / "timers" / "three_timers.bpmn").read_bytes()


def test_a_date_worked_out_from_a_corrected_field_moves_with_it(carepath: CarePath, clock: ManualClock) -> None:
    """The diagnosis date typed a year late: the survey 18 months after diagnosis is due 18 months after the
    corrected date, not the mistyped one. A date worked out from today, and a duration, keep theirs."""
    carepath.catalog.deploy_upload({"three_timers.bpmn": _THREE_TIMERS}, "author:tok_test")
    view = carepath.instances.start("test_three_timers", "MRN-6", "system:t", {"diagnosis_date": "2026-01-15"})
    assert str(view.next_due_at).startswith("2026-02-14")  # today + 30
    carepath.instances.correct_data(view.id, {"note_code": "x"}, "entered_in_error", CLINICIAN)  # no timer reads it
    carepath.instances.correct_data(view.id, {"diagnosis_date": "2024-07-01"}, "transcription_error", CLINICIAN)
    moved = carepath.instances.get(view.id)
    assert str(moved.next_due_at).startswith("2026-01-01")  # in the past
    with carepath.sessions() as session:
        payloads = session.scalars(
            select(InstanceEvent.payload)
            .where(InstanceEvent.instance_id == view.id, InstanceEvent.type == "data_corrected")
            .order_by(InstanceEvent.seq)
        ).all()
    untouched, corrected = (json.loads(p) if isinstance(p, str) else p for p in payloads)
    assert "timers_moved" not in untouched
    assert corrected["timers_moved"] == ["survey_due"] and corrected["fields"] == ["diagnosis_date"]
    assert "2024" not in json.dumps(corrected) and "2026" not in json.dumps(corrected)  # no dates, no values
    # Overdue now: the worker's next round fires it; the month and the year still wait as they were.
    assert fire_due_timers(carepath.instances) == 1
    after = carepath.instances.get(view.id)
    assert [t["element"] for t in after.ready_tasks] == ["survey"]
    assert str(after.next_due_at).startswith("2026-02-14")


def test_a_correction_a_timer_cannot_be_worked_out_from_changes_nothing(carepath: CarePath) -> None:
    carepath.catalog.deploy_upload({"three_timers.bpmn": _THREE_TIMERS}, "author:tok_test")
    view = carepath.instances.start("test_three_timers", "MRN-7", "system:t", {"diagnosis_date": "2026-01-15"})
    with pytest.raises(StartDataError) as refused:
        carepath.instances.correct_data(view.id, {"diagnosis_date": "not a date"}, "transcription_error", CLINICIAN)
    assert "not a date" not in str(refused.value)  # the value is never echoed
    assert [(p.field, p.element) for p in refused.value.problems] == [("/data/diagnosis_date", "survey_due")]
    after = carepath.instances.get(view.id)
    assert (after.version, after.next_due_at) == (view.version, view.next_due_at)
    assert carepath.instances.instance_data(view.id)["diagnosis_date"] == "2026-01-15"


# A timer waiting for a date a script worked out from the date of diagnosis (as diagrams before the timers
# read the date themselves did), and a script that read the clock as well.
_DERIVED_TIMER = (Path(__file__).parent / "diagrams" / "timers" / "derived_timer.bpmn").read_bytes()


def test_a_date_a_script_worked_out_from_a_corrected_field_is_worked_out_again(
    carepath: CarePath, clock: ManualClock
) -> None:
    carepath.catalog.deploy_upload({"derived_timer.bpmn": _DERIVED_TIMER}, "author:tok_test")
    view = carepath.instances.start("test_derived_timer", "MRN-8", "system:t", {"diagnosis_date": "2026-01-15"})
    assert str(view.next_due_at).startswith("2026-04-15")
    days_since = carepath.instances.instance_data(view.id)["days_since"]
    carepath.instances.correct_data(view.id, {"diagnosis_date": "2025-12-01"}, "transcription_error", CLINICIAN)
    assert str(carepath.instances.get(view.id).next_due_at).startswith("2026-03-01")
    data = carepath.instances.instance_data(view.id)
    assert (data["review_due"], data["reminder_on"]) == ("2026-03-01", "2026-02-15")
    assert data["days_since"] == days_since  # worked out with today(): never worked out again
    with carepath.sessions() as session:
        [payload] = session.scalars(
            select(InstanceEvent.payload).where(
                InstanceEvent.instance_id == view.id, InstanceEvent.type == "data_corrected"
            )
        ).all()
    corrected = json.loads(payload) if isinstance(payload, str) else payload
    assert corrected["recomputed"] == ["reminder_on", "review_due"] and corrected["timers_moved"] == ["review_timer"]
    assert "2026-03" not in json.dumps(corrected)  # names, never values


def test_a_correction_a_script_cannot_work_out_its_values_from_changes_nothing(carepath: CarePath) -> None:
    carepath.catalog.deploy_upload({"derived_timer.bpmn": _DERIVED_TIMER}, "author:tok_test")
    view = carepath.instances.start("test_derived_timer", "MRN-9", "system:t", {"diagnosis_date": "2026-01-15"})
    with pytest.raises(StartDataError) as refused:
        carepath.instances.correct_data(view.id, {"diagnosis_date": "not a date"}, "transcription_error", CLINICIAN)
    assert "not a date" not in str(refused.value)
    assert [(p.field, p.element) for p in refused.value.problems] == [("/data/diagnosis_date", "plan")]
    after = carepath.instances.get(view.id)
    assert (after.version, after.next_due_at) == (view.version, view.next_due_at)
    assert carepath.instances.instance_data(view.id)["review_due"] == "2026-04-15"
