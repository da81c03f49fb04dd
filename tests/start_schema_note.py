"""The gate notes that a pathway has no start data schema (``start-schema-missing``, a warning).
No diagram of the test corpus has one, so tests about other faults compare the problems without it;
tests/test_start_contract.py checks the note itself."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.errors import Problem
from engine.pathways import validation

NOTE = "start-schema-missing"


def without_note(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.code != NOTE]


def validate_paths(*args: Any, **kwargs: Any) -> list[Problem]:
    return without_note(validation.validate_paths(*args, **kwargs))


def validate_upload(*args: Any, **kwargs: Any) -> list[Problem]:
    return without_note(validation.validate_upload(*args, **kwargs))
