"""The warning signs catalogue, for the documents ("warning signs and who to call").

It is loaded and checked by :mod:`engine.rules.warning_signs` (a rules catalogue, also read by the
warning-sign triage); this module re-exports it so the documents keep one import.
"""

from __future__ import annotations

from engine.rules.warning_signs import (
    DIAGNOSES,
    URGENCIES,
    WHEN,
    Contact,
    WarningSign,
    WarningSignCatalogue,
    load_warning_signs,
    parse_warning_signs,
)

__all__ = [
    "DIAGNOSES",
    "URGENCIES",
    "WHEN",
    "Contact",
    "WarningSign",
    "WarningSignCatalogue",
    "load_warning_signs",
    "parse_warning_signs",
]
