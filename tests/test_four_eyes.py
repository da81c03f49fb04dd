"""Four eyes (issue 18, point 4): a new pathway version is deployed pending and a second person activates it."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

import engine.pathways.versions
from engine import CarePath, FourEyesError, ManualClock, NotFoundError, Settings, VersionStateError
from engine.four_eyes import person_of, require_second_person

TESTS = Path(__file__).resolve().parent
ALICE, BOB = "author:staff:alice", "author:staff:bob"


def _folder(tmp_path: Path) -> Path:
    target = tmp_path / "pathways"
    shutil.copytree(TESTS / "pathways", target)
    return target


def _changed_upload(folder: Path) -> dict[str, bytes]:
    """The assessment diagram with a renamed task: a new version of test_assessment."""
    text = (folder / "assessment.bpmn").read_text()
    changed = text.replace('name="Holistic needs assessment"', 'name="Needs assessment (HNA)"')
    return {"assessment.bpmn": changed.encode()}


@pytest.fixture
def engine_on(tmp_path: Path, database_url: str, clock: ManualClock) -> CarePath:
    app = CarePath(Settings(database_url=database_url, pathways_dir=_folder(tmp_path)), clock, upgrade=True)
    app.catalog.sync_library()  # the bootstrap: the folder's versions are active
    yield app
    app.close()


@pytest.mark.parametrize(
    ("actor", "person"),
    [
        ("author:staff:alice", "staff:alice"),
        ("system:tok_0123 for staff:alice", "staff:alice"),
        ("author:tok_0123 for staff:alice", "staff:alice"),
        ("cli:staff:alice", "staff:alice"),
        ("author:tok_0123", None),
        ("cli", None),
        ("system", None),
        ("author:staff:", None),
    ],
)
def test_the_person_an_actor_names(actor: str, person: str | None) -> None:
    assert person_of(actor) == person


def test_the_bootstrap_is_active_and_a_deployed_version_waits_for_a_second_author(
    engine_on: CarePath, clock: ManualClock
) -> None:
    [v1] = [v for v in engine_on.catalog.versions("test_assessment")]
    assert v1.active and v1.activated_by == "system"
    clock.advance(timedelta(minutes=1))
    [v2] = engine_on.catalog.deploy_upload(_changed_upload(engine_on.settings.pathways_dir), ALICE)
    assert v2.latest and not v2.active and v2.activated_at is None
    started = engine_on.instances.start("test_assessment", "MRN-1", "system:test")
    assert started.pathway_version == v1.version  # the pending version is not started
    assert engine_on.catalog.current("test_assessment").version == v1.version

    clock.advance(timedelta(minutes=1))
    activated = engine_on.catalog.activate("test_assessment", v2.version[:12], BOB)
    assert activated.active and activated.activated_by == BOB and activated.activated_at == clock.now().isoformat()
    assert engine_on.instances.start("test_assessment", "MRN-2", "system:test").pathway_version == v2.version
    listed = {v.version: v for v in engine_on.catalog.versions("test_assessment")}
    assert listed[v2.version].deployed_by == ALICE and listed[v2.version].activated_by == BOB
    assert not listed[v1.version].active
    with pytest.raises(VersionStateError):
        engine_on.catalog.activate("test_assessment", v2.version, "author:staff:carol")
    with pytest.raises(NotFoundError):  # a prefix too short to say which version is approved
        engine_on.catalog.activate("test_assessment", v2.version[:3], "author:staff:carol")


@pytest.mark.parametrize(
    "approver",
    [
        ALICE,  # the same token or signed-in person
        "author:tok_1234 for staff:alice",  # another token of the same person
        "system:tok_5678 for staff:alice",  # a system acting on behalf of the same person
        "cli:staff:alice",  # the command line, as her
        "author:tok_1234",  # a token naming no person could be anyone's second token
    ],
)
def test_the_deployer_cannot_activate_their_own_version(engine_on: CarePath, clock: ManualClock, approver: str) -> None:
    clock.advance(timedelta(minutes=1))
    [v2] = engine_on.catalog.deploy_upload(_changed_upload(engine_on.settings.pathways_dir), ALICE)
    with pytest.raises(FourEyesError) as refused:
        engine_on.catalog.activate("test_assessment", v2.version, approver)
    assert "second author" in refused.value.message
    assert not engine_on.catalog.versions("test_assessment")[0].active


def test_a_folder_change_after_the_bootstrap_is_pending(engine_on: CarePath, clock: ManualClock) -> None:
    folder = engine_on.settings.pathways_dir
    (folder / "assessment.bpmn").write_bytes(_changed_upload(folder)["assessment.bpmn"])
    clock.advance(timedelta(minutes=1))
    [v2] = [v for v in engine_on.catalog.sync_library() if v.pathway_id == "test_assessment"]
    assert not v2.active
    # Deployed by "system" (no person): any person may activate it.
    assert engine_on.catalog.activate("test_assessment", v2.version, ALICE).active


def test_with_four_eyes_off_a_deploy_is_active_at_once(tmp_path: Path, database_url: str, clock: ManualClock) -> None:
    folder = _folder(tmp_path)
    app = CarePath(Settings(database_url=database_url, pathways_dir=folder, four_eyes=False), clock, upgrade=True)
    try:
        app.catalog.sync_library()
        clock.advance(timedelta(minutes=1))
        [v2] = app.catalog.deploy_upload(_changed_upload(folder), ALICE)
        assert v2.active and v2.activated_by == ALICE
        assert app.instances.start("test_assessment", "MRN-1", "system:test").pathway_version == v2.version
    finally:
        app.close()


def test_four_eyes_is_on_by_default_and_cannot_be_off_in_production() -> None:
    assert Settings().four_eyes
    assert not Settings.from_env({"CAREPATH_FOUR_EYES": "off"}).four_eyes
    assert Settings.from_env({"CAREPATH_FOUR_EYES": "on"}).four_eyes
    with pytest.raises(ValueError, match="production"):
        Settings.from_env({"CAREPATH_FOUR_EYES": "off", "CAREPATH_ENV": "production"})
    with pytest.raises(ValueError, match="on or off"):
        Settings.from_env({"CAREPATH_FOUR_EYES": "maybe"})


def test_require_second_person_names_the_approver() -> None:
    assert require_second_person("system", BOB, "x") == "staff:bob"


@pytest.mark.postgres
@pytest.mark.parametrize("database_kind", ["postgresql"], indirect=True)  # SQLite's single writer serialises them
def test_of_two_authors_activating_at_once_one_does_and_the_other_is_told(
    engine_on: CarePath, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.advance(timedelta(minutes=1))
    [v2] = engine_on.catalog.deploy_upload(_changed_upload(engine_on.settings.pathways_dir), ALICE)
    check = engine.pathways.versions.require_second_person

    def carol_activates_meanwhile(requested_by: str, approver: str, what: str) -> str:
        monkeypatch.setattr(engine.pathways.versions, "require_second_person", check)
        engine_on.catalog.activate("test_assessment", v2.version, "author:staff:carol")  # commits first
        return check(requested_by, approver, what)

    monkeypatch.setattr(engine.pathways.versions, "require_second_person", carol_activates_meanwhile)
    with pytest.raises(VersionStateError, match="just now"):
        engine_on.catalog.activate("test_assessment", v2.version, BOB)
    assert engine_on.catalog.current("test_assessment").activated_by == "author:staff:carol"


def test_the_pages_name_a_pathway_by_its_current_versions_title(engine_on: CarePath, clock: ManualClock) -> None:
    """The lists' titles (one query) follow the version new instances start on, as current() does: a
    version pending its second author does not rename the pathway on every clinician's page."""

    def agrees() -> dict[str, str]:
        titles = engine_on.catalog.titles()
        assert titles == {info.pathway_id: info.title for info in engine_on.catalog.pathways()}
        return titles

    assert agrees()["test_assessment"] == "Test assessment pathway"
    folder = engine_on.settings.pathways_dir
    upload = _changed_upload(folder)
    upload["assessment.bpmn"] = upload["assessment.bpmn"].replace(
        b'name="Test assessment pathway"', b'name="Needs assessment pathway"'
    )
    clock.advance(timedelta(minutes=1))
    [pending] = engine_on.catalog.deploy_upload(upload, ALICE)
    assert pending.title == "Needs assessment pathway" and not pending.active
    assert agrees()["test_assessment"] == "Test assessment pathway"
    clock.advance(timedelta(minutes=1))
    engine_on.catalog.activate("test_assessment", pending.version, BOB)
    assert agrees()["test_assessment"] == "Needs assessment pathway"
