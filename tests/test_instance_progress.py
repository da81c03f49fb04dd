"""Where an instance is on its diagrams (engine.instances.progress, engine.spiff.progress): what is done,
ready, running in a sub-pathway and waiting, with each timer's due time; elements whose history was
compacted away are done from the event trail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import CarePath, ManualClock, Settings
from engine.db.session import read_only
from engine.errors import NotFoundError
from engine.instances.progress import instance_progress
from engine.instances.store import load_instance
from engine.spiff.progress import STATES, element_progress

TESTS = Path(__file__).resolve().parent
START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[CarePath]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'progress.sqlite3'}",
        pathways_dir=TESTS / "pathways",
        rules_dir=TESTS.parent / "rules",
    )
    app = CarePath(settings, ManualClock(START), upgrade=True)
    app.catalog.sync_library()
    try:
        yield app
    finally:
        app.close()


def states(engine: CarePath, instance_id: str) -> dict[str, tuple[str, str | None]]:
    return {e.element: (e.state, e.due_at) for e in instance_progress(engine.instances, instance_id).elements}


def test_ready_done_and_waiting_with_the_timers_due_time(engine: CarePath) -> None:
    view = engine.instances.start("test_parallel_timer", "MRN-1", "system:test")
    found = states(engine, view.id)
    assert found[view.ready_tasks[0]["element"]] == ("ready", None)
    waiting = {element: due for element, (state, due) in found.items() if state == "waiting"}
    assert list(waiting.values()) == [(START + timedelta(days=7)).isoformat()], found
    assert all(state in STATES for state, _ in found.values())
    assert any(state == "done" for state, _ in found.values())  # the start event


def test_a_running_sub_pathway_is_active_and_its_tasks_are_named_by_their_diagram(engine: CarePath) -> None:
    view = engine.instances.start("test_parallel_review", "MRN-1", "system:test")
    progress = instance_progress(engine.instances, view.id)
    by_element = {e.element: e for e in progress.elements}
    assert by_element["offer_support"].state == "ready"
    assert by_element["offer_support"].process != progress.elements[0].process  # on the sub-pathway's diagram
    assert "active" in {e.state for e in progress.elements}


def test_completed_tasks_are_done_even_once_compacted_from_the_state(engine: CarePath) -> None:
    view = engine.instances.start("test_assessment", "MRN-1", "system:test")
    after = engine.instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"anxiety": 9, "fatigue": 2}, "clinician:test"
    )
    engine.instances.steps.cache.clear()  # read the stored state, whose finished history is compacted
    with read_only(engine.sessions) as session:
        stored = engine.instances.steps.restore(session, load_instance(session, view.id))
        assert "hna" not in {e.element for e in element_progress(stored)}  # the premise
    found = states(engine, view.id)
    assert found["hna"] == ("done", None)  # from the event trail
    assert found[after.ready_tasks[0]["element"]] == ("ready", None)
    # Named as its diagram names it, not by its id (the patient page lists what was done by name).
    hna = next(e for e in instance_progress(engine.instances, view.id).elements if e.element == "hna")
    assert (hna.name, hna.named) == ("Holistic needs assessment", True)


def test_an_element_the_author_left_unnamed_says_so() -> None:
    """An unnamed element (here the start events) keeps its id as its name for the diagram, and says it
    is unnamed, so that the list of what was done leaves it out."""
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

    from engine.pathways.sources import PathwayLibrary, compile_source

    compiled = compile_source(PathwayLibrary(TESTS / "pathways").source("test_parallel_review"))
    workflow = BpmnWorkflow(compiled.spec, compiled.subprocess_specs)
    workflow.do_engine_steps()
    found = element_progress(workflow)
    assert {e.element for e in found if not e.named} == {"start", "sc_start"}
    assert all(e.name == e.element for e in found if not e.named)
    assert next(e for e in found if e.element == "split").name == "Round starts"


def test_an_unknown_instance_is_not_found(engine: CarePath) -> None:
    with pytest.raises(NotFoundError):
        instance_progress(engine.instances, "00000000-0000-4000-8000-000000000000")
