"""Reports as tables: the measures report flattened to one row per figure (what a CSV file, the
manager page's tables and ``carepath report measures --format csv`` show), and CSV text that a
spreadsheet opens without running anything in it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["MEASURE_TABLE_COLUMNS", "SUPPRESSED", "csv_of_texts", "csv_text", "measure_table"]

MEASURE_TABLE_COLUMNS = ("section", "group", "figure", "value")
SUPPRESSED = "suppressed"  # what a blanked value reads as in a table
# section -> the row's fields that name its group (the rest are its figures)
_GROUPS = {
    "measures": ("id",),
    "referrals": ("service", "urgency"),
    "declined": ("kind", "reason"),
    "warning_signs": ("colour",),
}
_NOT_FIGURES = {"title", "suppressed"}
# A cell a spreadsheet would read as a formula (OWASP "CSV injection"): shown as text instead.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A cell of a row joined with NUL (which no cell holds: text columns of PostgreSQL cannot) that starts so.
_FORMULA_CELL = re.compile("(?:^|\x00)[=+\\-@\t\r]")


def measure_table(report: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per figure of a (suppressed) measures report: section, group (e.g. ``psychology/urgent``),
    figure (``numerator``, ``median_days_to_acceptance``...) and its value (``suppressed`` when blanked,
    empty when there is none)."""
    rows = []
    for section, keys in _GROUPS.items():
        for row in report[section]:
            group = "/".join(str(row[key]) for key in keys)
            blanked = set(row.get("suppressed", ()))
            for figure, value in row.items():
                if figure in keys or figure in _NOT_FIGURES:
                    continue
                shown = SUPPRESSED if figure in blanked else ("" if value is None else str(value))
                rows.append({"section": section, "group": group, "figure": figure, "value": shown})
    return rows


def csv_of_texts(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """:func:`csv_text` for rows that are already sequences of text in ``columns``' order (a large
    export: the rows are handed to the C writer as they are, and only a row with a formula-like cell,
    found by one search of the joined row, is rewritten cell by cell)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    risky = _FORMULA_CELL.search
    writer.writerows(row if risky("\x00".join(row)) is None else [_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_text(columns: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV (RFC 4180, CRLF line ends) with a header row; a cell that starts like a formula is
    prefixed with ``'`` so that no spreadsheet runs it."""
    out = io.StringIO()
    names = list(columns)
    writer = csv.writer(out)
    writer.writerow(names)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in names])
    return out.getvalue()
