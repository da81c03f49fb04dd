"""The safety notices a task's form declares, filled for the API's reader (engine.documents.notices).

A form that declares ``x-carepath-safety-notice`` (the needs checklist) is shown with the 24-hour
line's message, number and hours of the patient of the task's instance, as their documents give them
(:func:`engine.documents.build.fill_instance_forms`): their health system's section of the service
directory (the instance's ``health_system``, else ``CAREPATH_HEALTH_SYSTEM``, else the only section:
never chosen by language), and a child's treatment centre's 24-hour line, never the adult one; in the
language of the request's ``Accept-Language`` (Swedish or English; anything else gets English). Every
API reply that carries a ready task's form goes through here: the task list, one task, an instance's
ready tasks and a patient's own forms (/v1/me).
"""

from __future__ import annotations

from typing import Any

from flask import request

from engine.documents.build import fill_instance_forms
from engine.documents.render import LANGUAGES
from engine.instances.view import InstanceView

from . import carepath

__all__ = ["VARY", "instance_body", "reader_language", "with_notices", "with_notices_across"]

# Replies whose forms carry a notice depend on the reader's language.
VARY = {"Vary": "Accept-Language"}


def reader_language() -> str:
    """``sv`` or ``en`` from the request's Accept-Language."""
    return request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0]


def with_notices(tasks: list[dict[str, Any]], instance_id: str) -> list[dict[str, Any]]:
    """One instance's tasks with their forms' safety notices filled with its patient's line.

    Raises: NotFoundError (no such instance), RuleFileError (the directory is invalid)."""
    return fill_instance_forms(carepath(), instance_id, tasks, reader_language())


def with_notices_across(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks of many instances (each with its ``instance_id``: the task list) with their forms' notices
    filled, each with its own patient's line: the list shows the forms, so a child's checklist there
    gives the child's line, as everywhere else. Only the instances with a form declaring a notice are read.

    Raises: NotFoundError (an instance gone meanwhile), RuleFileError (the directory is invalid)."""
    by_instance: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        by_instance.setdefault(str(task["instance_id"]), []).append(index)
    filled = list(tasks)
    for instance_id, indexes in by_instance.items():
        for index, task in zip(indexes, with_notices([tasks[i] for i in indexes], instance_id), strict=True):
            filled[index] = task
    return filled


def instance_body(view: InstanceView) -> dict[str, Any]:
    """An instance as the API returns it: its ready tasks' forms with its patient's notices."""
    return {**view.as_dict(), "ready_tasks": with_notices(view.ready_tasks, view.id)}
