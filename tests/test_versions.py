"""Pathway versions: content hashes, stored once, instances pinned to the version they started on."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import func, select

from engine import CarePath, ManualClock, Settings
from engine.db.models import PathwayVersion
from engine.pathways.sources import PathwayLibrary, version_of

TESTS = Path(__file__).resolve().parent


def _copy_pathways(tmp_path: Path) -> Path:
    target = tmp_path / "pathways"
    shutil.copytree(TESTS / "pathways", target)
    return target


def _rename_task(folder: Path, file: str, old: str, new: str) -> None:
    path = folder / file
    path.write_text(path.read_text().replace(old, new))


def test_version_is_the_hash_of_every_file_the_pathway_uses(tmp_path: Path) -> None:
    folder = _copy_pathways(tmp_path)
    library = PathwayLibrary(folder)
    source = library.source("test_assessment")
    assert set(source.files) == {"assessment.bpmn", "shared/support.bpmn"}
    assert source.version == version_of(source.files)
    # A change to the shared sub-pathway is a new version of every pathway calling it.
    _rename_task(folder, "shared/support.bpmn", "Offer connection to support organisations", "Offer support")
    assert library.source("test_assessment").version != source.version
    # Pathways that do not call it keep theirs.
    assert library.source("test_service_step").files.keys() == {"service_step.bpmn"}


def test_each_version_is_stored_once(carepath: CarePath) -> None:
    carepath.catalog.sync_library()
    carepath.catalog.sync_library()
    with carepath.sessions() as session:
        count = session.scalar(
            select(func.count()).select_from(PathwayVersion).where(PathwayVersion.pathway_id == "test_assessment")
        )
    assert count == 1


def test_running_instance_keeps_its_version_and_new_ones_take_the_latest(
    tmp_path: Path, database_url: str, clock: ManualClock
) -> None:
    from datetime import timedelta

    folder = _copy_pathways(tmp_path)
    # Four eyes off: the folder's new version is active at once (tests/test_four_eyes.py has it on).
    app = CarePath(Settings(database_url=database_url, pathways_dir=folder, four_eyes=False), clock, upgrade=True)
    try:
        [v1] = [i for i in app.catalog.sync_library() if i.pathway_id == "test_assessment"]
        old = app.instances.start("test_assessment", "MRN-1", "system:test")
        _rename_task(folder, "assessment.bpmn", 'name="Holistic needs assessment"', 'name="Needs assessment (HNA)"')
        clock.advance(timedelta(minutes=1))
        [v2] = [i for i in app.catalog.sync_library() if i.pathway_id == "test_assessment"]
        assert v2.version != v1.version and v2.latest
        new = app.instances.start("test_assessment", "MRN-2", "system:test")
        assert new.pathway_version == v2.version
        assert new.ready_tasks[0]["name"] == "Needs assessment (HNA)"
        again = app.instances.get(old.id)
        assert again.pathway_version == v1.version
        assert again.ready_tasks[0]["name"] == "Holistic needs assessment"
        advanced = app.instances.complete_task(old.id, again.ready_tasks[0]["id"], {"anxiety": 1, "fatigue": 1}, "c")
        assert advanced.pathway_version == v1.version
        assert [v.version for v in app.catalog.versions("test_assessment")] == [v2.version, v1.version]
        assert b"Needs assessment (HNA)" in app.catalog.diagram("test_assessment")
        assert b"Holistic needs assessment" in app.catalog.diagram("test_assessment", v1.version[:12])
    finally:
        app.close()


def test_a_version_is_found_by_a_prefix_only_when_one_version_has_it(
    tmp_path: Path, database_url: str, clock: ManualClock
) -> None:
    """The pages name versions by their first 12 characters: a prefix that several versions share, or LIKE's
    wildcards, find none (never the first of several)."""
    import pytest

    from engine.errors import NotFoundError

    folder = _copy_pathways(tmp_path)
    app = CarePath(Settings(database_url=database_url, pathways_dir=folder, four_eyes=False), clock, upgrade=True)
    try:
        seen: dict[str, str] = {}
        label = "Holistic needs assessment"
        for n in range(17):  # 16 possible first characters: two versions share one by the 17th at the latest
            [info] = [i for i in app.catalog.sync_library() if i.pathway_id == "test_assessment"]
            if info.version[0] in seen:
                break
            seen[info.version[0]] = info.version
            _rename_task(folder, "assessment.bpmn", f'name="{label}"', f'name="Assessment {n}"')
            label = f"Assessment {n}"
        assert len(app.catalog.versions("test_assessment")) == len(seen) + 1
        shared, first = info.version[0], seen[info.version[0]]
        assert app.catalog.version("test_assessment", info.version[:12]).version == info.version
        assert app.catalog.version("test_assessment", first[:12]).version == first
        for ambiguous in (shared, "%", "_", "%" + info.version[1:]):
            with pytest.raises(NotFoundError):
                app.catalog.version("test_assessment", ambiguous)
            with pytest.raises(NotFoundError):
                app.catalog.diagram("test_assessment", ambiguous)
    finally:
        app.close()
