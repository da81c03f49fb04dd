"""``carepath demo``: synthetic patients spread over the bundled pathways, loaded once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from api.cli import main
from engine import CarePath, ConflictError, ManualClock, Settings
from engine.db.models import PathwayInstance
from engine.demo import DEMO_PATIENTS, DemoRow, load_demo
from engine.documents.build import care_plan_document, end_of_treatment_summary

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.slow


@dataclass
class Loaded:
    settings: Settings
    rows: dict[str, DemoRow]
    app: CarePath


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    folder = tmp_path_factory.mktemp("demo")
    settings = Settings(database_url=f"sqlite:///{folder / 'demo.sqlite3'}")
    rows = {row.patient_ref: row for row in load_demo(settings, now=NOW)}
    app = CarePath(settings, ManualClock(NOW))
    try:
        yield Loaded(settings, rows, app)
    finally:
        app.close()


def test_patients_are_synthetic_and_varied(loaded: Loaded) -> None:
    rows = loaded.rows
    assert len(rows) == len(DEMO_PATIENTS) >= 9
    assert all(re.fullmatch(r"SYN-DEMO-\d{4}", ref) for ref in rows)
    assert all(row.loaded and row.status == "running" for row in rows.values())
    assert len({row.pathway_id for row in rows.values()}) == 6
    assert len({p.age for p in DEMO_PATIENTS}) == len(DEMO_PATIENTS)
    assert min(p.age for p in DEMO_PATIENTS) < 25


def test_spread_of_states(loaded: Loaded) -> None:
    ready = {ref: row.ready for ref, row in loaded.rows.items()}
    assert "offer_support" in ready["SYN-DEMO-0001"]  # just diagnosed
    assert "agree" in ready["SYN-DEMO-0002"]  # care plan proposed
    assert "mdt" in ready["SYN-DEMO-0003"]  # plan agreed, referrals sent
    assert "treatment" in ready["SYN-DEMO-0004"]  # in treatment
    assert ready["SYN-DEMO-0005"] == ["discuss"]  # summary written, to discuss
    assert ready["SYN-DEMO-0006"] == ["first_review"]  # waiting for the 3-month review
    assert ready["SYN-DEMO-0007"] == ["survey_invitation"]  # 18-month survey invitation due
    assert "triage" in ready["SYN-DEMO-0008"]  # warning sign reported
    assert "shared_care_talk" in ready["SYN-DEMO-0009"]  # young person, travel costs done
    assert "assign_contact" not in ready["SYN-DEMO-0010"]  # just diagnosed, its named contact assigned
    checked = loaded.app.instances.get(loaded.rows["SYN-DEMO-0010"].instance_id)
    assert checked.pathway_check == "lung"  # the EHR's diagnosis names lung cancer: the pathway to check


def test_due_dates_are_relative_to_today(loaded: Loaded) -> None:
    rows = loaded.rows
    assert all(row.next_due_at and row.next_due_at > NOW.isoformat() for row in rows.values())  # nothing overdue
    assert rows["SYN-DEMO-0006"].next_due_at == "2026-07-22T00:00:00+00:00"  # diagnosed 22 April + 3 months
    data = loaded.app.instances.instance_data(rows["SYN-DEMO-0007"].instance_id)
    assert data["diagnosis_date"] <= "2024-12-01"  # 18 months before today, or earlier


def test_care_plans_and_documents(loaded: Loaded) -> None:
    rows, app = loaded.rows, loaded.app
    proposed = app.care_plans.get(rows["SYN-DEMO-0002"].instance_id).items
    assert proposed and {i["status"] for i in proposed} == {"proposed"}
    agreed = app.care_plans.get(rows["SYN-DEMO-0003"].instance_id).items
    assert {i["status"] for i in agreed if i["kind"] == "referral"} == {"referred"}
    summary = end_of_treatment_summary(app, rows["SYN-DEMO-0005"].instance_id, "sv")
    assert summary["warning_signs"]["signs"] and summary["gp_actions"]
    # Each treatment of the course once, by its catalogue name: no row that is not a treatment.
    treated = [(t["code"], t["completed_on"] is not None) for t in summary["treatments_received"]]
    assert treated == [("breast_conserving_surgery", True), ("radiotherapy", True)]
    palliative = care_plan_document(app, rows["SYN-DEMO-0006"].instance_id, "en")  # on the palliative route
    assert {(i["code"], i["status"]) for i in palliative["agreed"]} >= {
        ("specialist-palliative-care-referral", "referred")
    }
    assert palliative["wishes"]["advance_care_plan"]["preferred_place_of_care"]["code"] == "home"
    plan = care_plan_document(app, rows["SYN-DEMO-0009"].instance_id, "en")
    assert plan["what_matters"] and plan["agreed"]
    costs = app.instances.instance_data(rows["SYN-DEMO-0009"].instance_id)
    assert costs["help_given"] == ["nhs_travel_costs_scheme", "charity_grant"] and costs["age"] == 19


def test_loading_again_adds_nothing(loaded: Loaded) -> None:
    again = load_demo(loaded.settings, now=NOW)
    assert [r.patient_ref for r in again] == list(loaded.rows) and not any(r.loaded for r in again)
    with loaded.app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(PathwayInstance)) == len(DEMO_PATIENTS)


def test_command_prints_the_table(loaded: Loaded, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    result = CliRunner().invoke(main, ["demo"], env={"CAREPATH_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()  # stderr names the database
    assert lines[0].split()[:2] == ["patient", "pathway"]
    assert any(line.startswith("SYN-DEMO-0007") and "quality of life survey" in line for line in lines)
    due = lines[0].index("next due")  # every row's date in its column, apart from the longest stage
    assert all(re.fullmatch(r"\s\s\d{4}-\d{2}-\d{2}", line[due - 2 :]) for line in lines[1:-1]), lines
    assert lines[-1] == f"{len(DEMO_PATIENTS)} demo patient(s) loaded, 0 already there"


def _with_a_real_patient(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'clinic.sqlite3'}"
    app = CarePath(
        Settings(database_url=url, pathways_dir=Path(__file__).parent / "pathways"), ManualClock(NOW), upgrade=True
    )
    try:
        app.catalog.sync_library()
        app.instances.start("test_assessment", "MRN-1001", "system:ehr")
    finally:
        app.close()
    return url


def _refs(url: str) -> list[str]:
    app = CarePath(Settings(database_url=url), ManualClock(NOW))
    try:
        with app.sessions() as session:
            return sorted(session.scalars(select(PathwayInstance.patient_ref)))
    finally:
        app.close()


def test_refuses_a_database_with_real_patients(tmp_path: Path) -> None:
    url = _with_a_real_patient(tmp_path)
    with pytest.raises(ConflictError, match="1 instance"):
        load_demo(Settings(database_url=url), now=NOW)
    result = CliRunner().invoke(main, ["demo"], env={"CAREPATH_DATABASE_URL": url})
    assert result.exit_code == 1
    assert "does not start with SYN-" in result.output and "--force" in result.output
    assert "MRN-1001" not in result.output and "Traceback" not in result.output
    assert _refs(url) == ["MRN-1001"]  # nothing loaded


def test_force_loads_next_to_real_patients(tmp_path: Path) -> None:
    url = _with_a_real_patient(tmp_path)
    result = CliRunner().invoke(main, ["demo", "--force"], env={"CAREPATH_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert _refs(url) == ["MRN-1001", *sorted(p.ref for p in DEMO_PATIENTS)]
