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

from engine.documents.build import fill_instance_forms, fill_listed_forms
from engine.documents.render import LANGUAGES
from engine.instances.queries import Page
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


def with_notices_across(page: Page) -> list[dict[str, Any]]:
    """A task list's tasks (each with its ``instance_id``) with their forms' notices filled, each with its
    own patient's line: the list shows the forms, so a child's checklist there gives the child's line, as
    everywhere else. Filled from what the page read of each row (no instance restored), else read.

    Raises: NotFoundError (an instance gone meanwhile), RuleFileError (the directory is invalid)."""
    return fill_listed_forms(carepath(), page.items, page.notice_contacts, reader_language())


def instance_body(view: InstanceView) -> dict[str, Any]:
    """An instance as the API returns it: its ready tasks' forms with its patient's notices."""
    return {**view.as_dict(), "ready_tasks": with_notices(view.ready_tasks, view.id)}
