"""Four eyes for migrations (issue 18, point 4): one author asks (the dry run is kept), a second approves it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from engine import CarePath, FourEyesError, ManualClock, NotFoundError, Settings, VersionStateError
from engine.instances.migration import migrate_pathway
from engine.instances.migration_requests import approve_migration, list_migration_requests, request_migration

ALICE, BOB = "author:staff:alice", "author:staff:bob"
TESTS = Path(__file__).resolve().parent
PATHWAY = "test_assessment"
ASSESSMENT = (TESTS / "pathways" / "assessment.bpmn").read_text()


def _renamed(name: str) -> dict[str, bytes]:
    """The assessment diagram with its first task renamed: a new version an instance may move to."""
    return {"assessment.bpmn": ASSESSMENT.replace('name="Holistic needs assessment"', f'name="{name}"').encode()}


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[CarePath]:
    folder = tmp_path / "pathways"
    shutil.copytree(TESTS / "pathways", folder)
    carepath = CarePath(Settings(database_url=database_url, pathways_dir=folder), clock, upgrade=True)  # four eyes on
    carepath.catalog.sync_library()
    try:
        yield carepath
    finally:
        carepath.close()


def _new_active_version(app: CarePath, clock: ManualClock) -> str:
    """An instance on the first version, then a second version deployed by Alice and activated by Bob."""
    view = app.instances.start(PATHWAY, "MRN-1", "system:ehr")
    clock.advance(timedelta(minutes=1))
    [info] = app.catalog.deploy_upload(_renamed("Needs assessment (HNA)"), ALICE)
    app.catalog.activate(PATHWAY, info.version, BOB)
    return view.id


def test_a_migration_moves_nothing_until_a_second_author_approves_it(app: CarePath, clock: ManualClock) -> None:
    instance_id = _new_active_version(app, clock)
    old = app.instances.get(instance_id).pathway_version
    with pytest.raises(FourEyesError):  # no request, no move
        migrate_pathway(app.instances, PATHWAY, ALICE)
    assert migrate_pathway(app.instances, PATHWAY, ALICE, dry_run=True).instances[0].instance_id == instance_id

    asked, dry_run = request_migration(app.instances, PATHWAY, ALICE)
    assert dry_run.dry_run and dry_run.instances[0].patient_ref == "MRN-1"  # the requester's own report
    assert asked.status == "requested" and asked.requested_by == ALICE and asked.approved_by is None
    [planned] = asked.report["instances"]
    assert planned["instance_id"] == instance_id and "patient_ref" not in planned  # kept without the patient
    assert app.instances.get(instance_id).pathway_version == old

    for same_person in (ALICE, "author:tok_1 for staff:alice", "cli:staff:alice", "author:tok_2"):
        with pytest.raises(FourEyesError):
            approve_migration(app.instances, asked.id, same_person)
    assert app.instances.get(instance_id).pathway_version == old
    assert list_migration_requests(app.instances, PATHWAY)[0].status == "requested"

    clock.advance(timedelta(minutes=5))
    done, report = approve_migration(app.instances, asked.id, BOB)
    assert report.instances[0].migrated
    assert app.instances.get(instance_id).pathway_version == asked.target_version != old
    assert (done.status, done.approved_by, done.approved_at) == ("executed", BOB, clock.now().isoformat())
    assert done.result is not None and done.result["instances"][0]["migrated"]
    with pytest.raises(VersionStateError):
        approve_migration(app.instances, asked.id, "author:staff:carol")
    with pytest.raises(NotFoundError):
        approve_migration(app.instances, "not-a-request", BOB)


def test_a_request_is_for_the_version_its_dry_run_reported(app: CarePath, clock: ManualClock) -> None:
    instance_id = _new_active_version(app, clock)
    asked, _ = request_migration(app.instances, PATHWAY, ALICE)
    clock.advance(timedelta(minutes=1))
    [third] = app.catalog.deploy_upload(_renamed("HNA"), ALICE)
    app.catalog.activate(PATHWAY, third.version, BOB)
    with pytest.raises(VersionStateError, match="ask again"):
        approve_migration(app.instances, asked.id, BOB)
    assert app.instances.get(instance_id).pathway_version not in (asked.target_version, third.version)


def test_an_approved_request_runs_in_several_processes_and_is_then_executed(
    app: CarePath, clock: ManualClock, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from api.cli import main

    ids = [app.instances.start(PATHWAY, f"MRN-J{n}", "system:ehr").id for n in range(5)]
    ids.append(_new_active_version(app, clock))
    asked, _dry_run = request_migration(app.instances, PATHWAY, ALICE)
    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(app.settings.pathways_dir))
    done = CliRunner().invoke(main, ["migrate", "--approve", asked.id, "--as", "bob", "--jobs", "2"])
    assert done.exit_code == 0, done.output
    assert {app.instances.get(i).pathway_version for i in ids} == {asked.target_version}
    [request] = list_migration_requests(app.instances, PATHWAY)
    assert request.status == "executed" and request.approved_by == "cli:staff:bob"
    assert done.stdout.count(": moved ") == len(ids) and "6 instance(s) moved, 0 refused" in done.stdout
