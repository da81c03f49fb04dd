"""The measures and the demand over time, for the charts: each windowed measure's rate per month,
referrals per week by urgency, and the backlog of open referrals at the end of each week. Small
counts are suppressed as in :func:`engine.reports.measures.suppress` (a suppressed value is None).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.reports.facts import CLOSING_STATUSES, Cohort, ItemFacts
from engine.reports.measures import MEASURES, MeasureQuery, compute_measures, suppress

__all__ = ["Trend", "backlog", "monthly_measures", "weekly_referrals"]

_ANSWERED = ("first_contact", "completed", *CLOSING_STATUSES)
URGENCY_ORDER = ("emergency", "urgent", "soon", "routine", "unknown")


@dataclass(frozen=True)
class Trend:
    """Values over time: ``labels`` (a month ``2026-01`` or a week's Monday ``2026-01-05``) and, per
    series name, one value per label (None: suppressed, or none to show)."""

    labels: list[str]
    series: dict[str, list[Any]]

    def rows(self) -> list[dict[str, Any]]:
        """The same numbers as a table: one row per label."""
        return [{"label": label, **{name: values[i] for name, values in self.series.items()}}
                for i, label in enumerate(self.labels)]


def _months(query: MeasureQuery) -> list[tuple[datetime, datetime]]:
    start = query.since.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    months = []
    while start < query.until:
        following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        months.append((max(start, query.since), min(following, query.until)))
        start = following
    return months


def _weeks(query: MeasureQuery) -> list[datetime]:
    """The Mondays (00:00 UTC) of the weeks the period touches."""
    monday = (query.since - timedelta(days=query.since.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    weeks = []
    while monday < query.until:
        weeks.append(monday)
        monday += timedelta(days=7)
    return weeks


def monthly_measures(cohort: Cohort, query: MeasureQuery, as_of: datetime, min_count: int) -> Trend:
    """Each windowed measure's rate (0-1) per calendar month of the period, suppressed."""
    series: dict[str, list[Any]] = {measure.title: [] for measure in MEASURES}
    labels = []
    for since, until in _months(query):
        labels.append(since.strftime("%Y-%m"))
        month = MeasureQuery(since, until, query.pathway_id)
        report = suppress(compute_measures(cohort, month, as_of), min_count)
        for measure, row in zip(MEASURES, report["measures"], strict=True):
            series[measure.title].append(row["rate"])
    return Trend(labels, series)


def _referrals(cohort: Cohort, query: MeasureQuery) -> list[ItemFacts]:
    wanted = {f.instance_id for f in cohort.instances if query.pathway_id in (None, f.pathway_id)}
    return [item for item in cohort.referrals if item.instance_id in wanted and item.referred_at is not None]


def _small(value: int, min_count: int) -> int | None:
    return None if 0 < value < min_count else value


def weekly_referrals(cohort: Cohort, query: MeasureQuery, min_count: int) -> Trend:
    """Referrals made each week of the period, by urgency (most urgent first), suppressed."""
    weeks = _weeks(query)
    counts: dict[str, list[int]] = {}
    for item in _referrals(cohort, query):
        assert item.referred_at is not None
        if query.holds(item.referred_at):
            index = (item.referred_at - weeks[0]).days // 7
            counts.setdefault(item.urgency or "unknown", [0] * len(weeks))[index] += 1
    order = sorted(counts, key=lambda u: (URGENCY_ORDER.index(u) if u in URGENCY_ORDER else len(URGENCY_ORDER), u))
    return Trend([w.date().isoformat() for w in weeks],
                 {urgency: [_small(v, min_count) for v in counts[urgency]] for urgency in order})


def backlog(cohort: Cohort, query: MeasureQuery, as_of: datetime, min_count: int) -> Trend:
    """Referrals open (referred, not yet answered by a first contact or closed) at the end of each
    week of the period up to ``as_of``, suppressed."""
    referrals = _referrals(cohort, query)
    labels, open_counts = [], []
    for monday in _weeks(query):
        end = min(monday + timedelta(days=7), query.until)
        if end > as_of:
            break
        open_now = 0
        for item in referrals:
            assert item.referred_at is not None
            answered = min((at for status, at in item.moved.items() if status in _ANSWERED), default=None)
            if item.referred_at < end and (answered is None or answered >= end):
                open_now += 1
        labels.append(monday.date().isoformat())
        open_counts.append(_small(open_now, min_count))
    return Trend(labels, {"open referrals": open_counts})
