"""The measures and the demand over time, for the charts: each windowed measure's rate per calendar
month of its start, referrals per week by urgency, and the backlog of open referrals at the end of
each week (referred before it, not answered by a first contact or closed before it). The values are
aggregated from the summary (:func:`engine.reports.summary.read_trends`); this module holds their
shape and the months and weeks a period is cut into. Small counts are suppressed as in
:func:`engine.reports.measures.suppress` (a suppressed value is None).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.reports.measures import MeasureQuery

__all__ = ["URGENCY_ORDER", "Trend", "months", "weeks"]

URGENCY_ORDER = ("emergency", "urgent", "soon", "routine", "unknown")


@dataclass(frozen=True)
class Trend:
    """Values over time: ``labels`` (a month ``2026-01`` or a week's Monday ``2026-01-05``) and, per
    series name, one value per label (None: suppressed, or none to show)."""

    labels: list[str]
    series: dict[str, list[Any]]

    def rows(self) -> list[dict[str, Any]]:
        """The same numbers as a table: one row per label."""
        return [
            {"label": label, **{name: values[i] for name, values in self.series.items()}}
            for i, label in enumerate(self.labels)
        ]


def months(query: MeasureQuery) -> list[tuple[datetime, datetime]]:
    """The calendar months (UTC) the period touches, each clipped to the period."""
    start = query.since.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    months = []
    while start < query.until:
        following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        months.append((max(start, query.since), min(following, query.until)))
        start = following
    return months


def weeks(query: MeasureQuery) -> list[datetime]:
    """The Mondays (00:00 UTC) of the weeks the period touches."""
    monday = (query.since - timedelta(days=query.since.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    weeks = []
    while monday < query.until:
        weeks.append(monday)
        monday += timedelta(days=7)
    return weeks
