"""Calendar arithmetic for clinical intervals: months that clamp to the month's end, working days.

"18 months after 31 August" is the last day of February, not 3 March: the same day N months later,
or the month's last day when that month is shorter (ISO 8601 / Java ``plusMonths`` semantics).
python-dateutil's ``relativedelta`` is the field's standard for it. Timers (``engine.spiff.patches``),
diagram expressions (``add_months``) and documents all use this one function.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from dateutil.relativedelta import relativedelta

__all__ = ["add_months", "add_working_days", "latest_today"]

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


def add_working_days(day: date, days: int, holidays: frozenset[date] = frozenset()) -> date:
    """The ``days``-th working day after ``day`` (Monday to Friday, not in ``holidays``); ``day`` itself
    when ``days`` is 0. A referral made on a Saturday with 2 working days is due on Tuesday.

    Raises:
        ValueError: ``days`` is negative or the result would fall outside the years 1 to 9999.
    """
    if days < 0:
        raise ValueError("a number of working days cannot be negative")
    try:
        while days:
            day += timedelta(days=1)
            if day.weekday() < 5 and day not in holidays:
                days -= 1
    except OverflowError:
        raise ValueError("the date would be outside the years 1 to 9999") from None
    return day


def latest_today(now: datetime) -> date:
    """Today's date where it is latest on Earth (UTC+14) at ``now``: a date recorded as "today" anywhere,
    whatever the deployment's time zone, is never after it, and a date a day ahead is. A ``now`` without a
    zone is taken as UTC (the engine's clocks give UTC)."""
    utc = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    return (utc + timedelta(hours=14)).date()
