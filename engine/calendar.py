"""Calendar arithmetic for clinical intervals: months that clamp to the month's end.

"18 months after 31 August" is the last day of February, not 3 March: the same day N months later,
or the month's last day when that month is shorter (ISO 8601 / Java ``plusMonths`` semantics).
python-dateutil's ``relativedelta`` is the field's standard for it. Timers (``engine.spiff.patches``),
diagram expressions (``add_months``) and documents all use this one function.
"""

from __future__ import annotations

from datetime import date
from typing import TypeVar

from dateutil.relativedelta import relativedelta

__all__ = ["add_months"]

When = TypeVar("When", bound=date)  # a date or a datetime (datetime is a date)


def add_months(when: When, months: int) -> When:
    """``when`` moved by whole ``months`` (may be negative), clamped to the last day of the target month.

    Raises:
        ValueError: the result would fall outside the years 1 to 9999.
    """
    try:
        return when + relativedelta(months=months)
    except (OverflowError, ValueError):
        raise ValueError("the date would be outside the years 1 to 9999") from None
