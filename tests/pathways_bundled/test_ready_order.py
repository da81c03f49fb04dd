"""Ready tasks are listed in the order SpiffWorkflow's depth-first walk meets them, found from the task
dictionaries and sorted by their place in the tree (engine.spiff.workflows.ready_tasks): checked against
the walk itself at every call, through journeys of the bundled pathways with parallel branches and
sub-pathways."""

from __future__ import annotations

from typing import Any

import pytest
from SpiffWorkflow.util.task import TaskState

from engine import CarePath, ManualClock
from engine.spiff import workflows

from .journeys import JOURNEYS

CHECKED = [
    "breast-full",
    "children_young_people-full",
    "breast-recurrence",
    "lung-palliative",
    "prostate-surveillance-to-radical",
]


@pytest.mark.parametrize("name", CHECKED)
def test_ready_tasks_come_in_the_walks_order(
    name: str, bundled: CarePath, journey_clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = workflows.ready_tasks
    several: list[int] = []

    def checked(workflow: Any) -> list[Any]:
        tasks = listed(workflow)
        walked = list(workflow.get_tasks(state=TaskState.READY, manual=True))
        assert [t.id for t in tasks] == [t.id for t in walked], [t.task_spec.name for t in walked]
        if len(tasks) > 1:
            several.append(len(tasks))
        return tasks

    monkeypatch.setattr(workflows, "ready_tasks", checked)
    journey = JOURNEYS[name](bundled, journey_clock)
    assert journey.view.incident is None
    # The journey had several tasks ready at once, in and out of sub-pathways: the order was at stake.
    assert len(several) > 10 and max(several) >= 3, several
