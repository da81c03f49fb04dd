"""The safety notices a task's form declares, filled for the API's reader (engine.documents.notices).

A form that declares ``x-carepath-safety-notice`` (the needs checklist) is shown with the 24-hour
line's message, number and hours from the deployment's service directory (the section of
``CAREPATH_HEALTH_SYSTEM``, else its only or first: never chosen by language), in the language of the
request's ``Accept-Language`` (Swedish or English; anything else gets English). Every API reply that
carries a ready task's form goes through here: the task list, one task, and an instance's ready tasks.
"""

from __future__ import annotations

from typing import Any

from flask import request

from engine.documents.directory import service_directory
from engine.documents.notices import fill_tasks
from engine.documents.render import LANGUAGES
from engine.instances.view import InstanceView

from . import carepath

__all__ = ["VARY", "instance_body", "reader_language", "with_notices"]

# Replies whose forms carry a notice depend on the reader's language.
VARY = {"Vary": "Accept-Language"}


def reader_language() -> str:
    """``sv`` or ``en`` from the request's Accept-Language."""
    return request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0]


def with_notices(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks with their forms' safety notices filled. Raises: RuleFileError (the directory is invalid)."""
    settings = carepath().settings
    directory = service_directory(settings)
    # The deployment's numbers in the reader's words: a task list spans patients, so not each one's own.
    return fill_tasks(tasks, directory, reader_language(), directory.for_deployment(settings.health_system))


def instance_body(view: InstanceView) -> dict[str, Any]:
    """An instance as the API returns it: its ready tasks' forms with their notices."""
    return {**view.as_dict(), "ready_tasks": with_notices(view.ready_tasks)}
