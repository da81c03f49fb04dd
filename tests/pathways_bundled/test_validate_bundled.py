"""The bundled pathways pass ``carepath validate`` with nothing to report."""

from __future__ import annotations

from engine.pathways.validation import format_problems, validate_paths

from .journey import PATHWAYS


def test_bundled_pathways_pass_validation() -> None:
    problems = validate_paths([PATHWAYS], pathways_root=PATHWAYS)
    assert problems == [], format_problems(problems)


def test_each_bundled_diagram_file_passes_validation_against_the_library() -> None:
    """Validated one file at a time, as an author checks the file they edited."""
    for path in sorted(PATHWAYS.rglob("*.bpmn")):
        problems = validate_paths([path], pathways_root=PATHWAYS)
        assert problems == [], format_problems(problems)
