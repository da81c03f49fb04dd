"""Which diagram elements and sequence flows a step took, read from the workflow before compaction.

The engine compacts finished history out of an instance after every step (engine.spiff.compaction),
so what a step did is read from its tasks just before that: each completed task gives its element,
and each task reached (ready, waiting, running or completed) gives the move from the element it came
from (its nearest ancestor task that is a diagram element; SpiffWorkflow puts helper tasks without
one around boundary events and joins). A task's direct parent is kept by compaction while the task
is unfinished, so the pair is the real predecessor also across steps.
Scenario coverage (engine.scenarios) decides from these which sequence flows were taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.util.task import TaskState

__all__ = ["TakenPaths"]

_REACHED = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.COMPLETED | TaskState.ERROR


@dataclass
class TakenPaths:
    """Elements completed and (from, to) moves seen, per process id, over any number of steps."""

    completed: set[tuple[str, str]] = field(default_factory=set)  # (process, element)
    moves: set[tuple[str, str, str]] = field(default_factory=set)  # (process, from element, to element)

    def observe(self, workflow: Any) -> None:
        """Note the tasks reached and completed in a workflow and in every subprocess it runs."""
        for part in [workflow, *workflow.subprocesses.values()]:
            for task in list(part.tasks.values()):
                element = task.task_spec.bpmn_id
                if not task.state & _REACHED or not element:
                    continue
                process = task.workflow.spec.name
                if task.state == TaskState.COMPLETED:
                    self.completed.add((process, element))
                parent = task.parent
                while parent is not None and not parent.task_spec.bpmn_id:
                    parent = parent.parent
                if parent is not None:
                    self.moves.add((process, parent.task_spec.bpmn_id, element))
