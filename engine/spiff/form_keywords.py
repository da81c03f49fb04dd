"""The keywords CarePath adds to the JSON Schemas of forms and start data, read by the engine when it
checks data (engine.instances.forms) and by the gate when it checks a pathway (engine.pathways).

``x-carepath-not-after: "today"`` marks a date that records what has happened (a diagnosis, a course of
treatment completed, a review held): a date after today is a slip of the keyboard (2031 for 2021), and it
would move every timer counted from it -- the cancer care reviews, the survey, the summary's due date --
years away without a word. A date that plans (a review on, offer again on, rebooked for) does not say it.

``x-carepath-choices: "warning_signs"`` on a text field of catalogue codes (the triage's "problem as
triaged") asks the pages to offer the patient's own warning signs by name, most urgent first, instead of a
box where the nurse types a code from memory; the engine refuses a code that no sign of the catalogue in use
has, whoever sends it (an EHR's client as well as the page).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CHOICES", "NOT_AFTER", "keyword_mistakes"]

NOT_AFTER = "x-carepath-not-after"
CHOICES = "x-carepath-choices"
CHOICE_LISTS = ("warning_signs",)


def keyword_mistakes(schema: Any) -> list[str]:
    """Where a schema uses CarePath's keywords wrongly (its JSON pointer and what is wrong), each of which
    would otherwise be passed over in silence: :data:`NOT_AFTER` with anything but ``"today"`` or on a
    field that is not a ``"format": "date"`` (a date in the future let through), :data:`CHOICES` naming
    no list of :data:`CHOICE_LISTS` or on a field that is not ``"type": "string"``."""
    found: list[str] = []
    pending: list[tuple[str, Any]] = [("", schema)]
    while pending:  # no recursion: a schema may nest as deep as JSON allows
        pointer, node = pending.pop()
        if isinstance(node, list):
            pending += [(f"{pointer}/{i}", sub) for i, sub in enumerate(node)]
            continue
        if not isinstance(node, dict):
            continue
        pending += [(f"{pointer}/{key}", sub) for key, sub in node.items() if isinstance(sub, dict | list)]
        if NOT_AFTER in node:
            if node[NOT_AFTER] != "today":
                found.append(f'{pointer or "/"}: {NOT_AFTER} may only be "today"')
            elif node.get("format") != "date":
                found.append(f'{pointer or "/"}: {NOT_AFTER} needs "format": "date" on the same field')
        if CHOICES in node:
            if node[CHOICES] not in CHOICE_LISTS:
                found.append(f"{pointer or '/'}: {CHOICES} may only be one of: {', '.join(CHOICE_LISTS)}")
            elif node.get("type") != "string":
                found.append(f'{pointer or "/"}: {CHOICES} needs "type": "string" on the same field')
    return sorted(found)
