"""The engine-step round that skips walks with nothing to run (engine.spiff.patches, "no-idle-walks")
does SpiffWorkflow's own round's work on the bundled breast pathway: its scan never says "nothing
ready" where the walk would find a task to run, and a full journey leaves the same trail, status and
next due time as with SpiffWorkflow's own round."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import InstanceEvent
from engine.spiff import patches

from .conftest import START, bundled_app
from .journeys import SITES, Options, full_journey

# Ids are drawn afresh in each run (and the digests of data that holds them); everything else in the
# trail must be the same.
_DRAWN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|sha256:[0-9a-f]{64}")


def _journey(app: CarePath, clock: ManualClock) -> tuple[list[Any], str, str | None]:
    """A full breast journey: its trail, status and next due time. The trail as runs of events of one
    type, element and time, in order, each run's payloads sorted: a care plan's decisions are recorded
    in the order of their items' ids, which are drawn afresh in each run."""
    view = full_journey(app, clock, SITES["breast"], "SYN-ROUND-1", Options()).view
    with app.sessions() as session:
        rows = session.execute(
            select(InstanceEvent.type, InstanceEvent.element, InstanceEvent.at, InstanceEvent.payload)
            .where(InstanceEvent.instance_id == view.id)
            .order_by(InstanceEvent.seq)
        )
        trail = [
            (key, sorted(_DRAWN.sub("<drawn>", str(payload)) for *_, payload in run))
            for key, run in itertools.groupby(rows, key=lambda row: tuple(row[:3]))
        ]
    view = app.instances.get(view.id)
    return trail, view.status, view.next_due_at


def test_the_scan_never_misses_what_the_walk_would_run_and_a_journey_ends_as_with_spiffworkflows_round(
    bundled_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert BpmnWorkflow._do_engine_steps is patches.engine_round  # the facade installed it
    scan = patches._automatic_ready
    answers: list[bool] = []

    def checked(workflow: Any) -> bool:
        walked = {t.id for t in workflow.get_tasks(state=TaskState.READY) if not t.task_spec.manual}
        found = scan(workflow)
        assert found or not walked, "the scan missed a task the walk would run"
        answers.append(found)
        return found

    monkeypatch.setattr(patches, "_automatic_ready", checked)
    ours = bundled_app(bundled_template, tmp_path / "ours", clock := ManualClock(START))
    try:
        with_scan = _journey(ours, clock)
    finally:
        ours.close()
    # The journey asked often, and most walks had nothing to run: what the patch saves.
    assert answers.count(True) > 100 and answers.count(False) > answers.count(True), (
        answers.count(True),
        answers.count(False),
    )

    monkeypatch.setattr(BpmnWorkflow, "_do_engine_steps", patches.STOCK_ENGINE_ROUND)
    stock = bundled_app(bundled_template, tmp_path / "stock", clock := ManualClock(START))
    try:
        with_walks = _journey(stock, clock)
    finally:
        stock.close()
    assert sum(len(payloads) for _, payloads in with_scan[0]) > 50
    assert with_scan == with_walks
