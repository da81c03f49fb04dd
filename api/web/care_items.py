"""A care plan item's name as the patient's own plan gives it, for the staff pages that list items."""

from __future__ import annotations

from typing import Any

from engine.errors import RuleFileError

from .. import carepath
from .i18n import current_language

__all__ = ["care_item_name", "concern_name"]


def care_item_name(code: str, service: str | None = None) -> str:
    """A care plan item as the patient's own plan names it, in the page's language: the intervention's
    catalogue name ("Information on help with money, benefits and grants"), with the service type's name
    for a referral; a code the catalogue does not know, readable ("Info money"), as is every code while
    the catalogue's files are invalid (an author's edit the registry refuses): the page still shows."""
    try:
        catalogue: Any = carepath().rules.catalogue()
    except RuleFileError:
        catalogue = None
    name = _catalogue_name(catalogue and catalogue.interventions.get(code), code)
    if service:
        name += f" ({_catalogue_name(catalogue and catalogue.service_types.get(service), service)})"
    return name


def concern_name(code: str) -> str:
    """A concern of the needs checklist by its catalogue name in the page's language ("Worry, fear or
    anxiety"); a code the catalogue does not know (or every code while its files are invalid), readable."""
    try:
        catalogue: Any = carepath().rules.catalogue()
    except RuleFileError:
        catalogue = None
    return _catalogue_name(catalogue and catalogue.concerns.get(code), code)


def _catalogue_name(entry: Any, code: str) -> str:
    if entry is None:
        return code.replace("_", " ").replace("-", " ").capitalize()
    return str((entry.name_sv if current_language() == "sv" else None) or entry.name_en)
