"""The personalised care measures of one period, computed from a :class:`~engine.reports.facts.Cohort`.

``docs/measures.md`` defines each: its numerator, denominator and source events. A windowed measure
("within 31 days of diagnosis") counts in its denominator only the patients whose window has closed
by ``as_of`` or who have already met it; the others are ``pending``, so a recent period is not
reported as a failure.

Aggregates only. :func:`suppress` blanks every count from 1 to ``threshold - 1`` (and what could be
worked back to one: a numerator whose complement is that small, a rate or a median over so few), so no
patient can be singled out from a report.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, select

from engine.calendar import add_months
from engine.care_teams import NAME_PATTERN
from engine.db.models import PathwayInstance
from engine.errors import InvalidInputError, Problem
from engine.reports.facts import CLOSING_STATUSES, Cohort, InstanceFacts, ItemFacts
from engine.settings import ReferralTimeframes

__all__ = [
    "MAX_PERIOD_DAYS",
    "MEASURES",
    "MeasureQuery",
    "compute_measures",
    "referral_deadline",
    "suppress",
]

DEFAULT_PERIOD_DAYS = 365
MAX_PERIOD_DAYS = 5 * 366  # a report covers at most five years: its work is bounded by the period
PATHWAY_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
# Statuses after which a referral is no longer waiting for its first contact.
_TEAM = re.compile(NAME_PATTERN)
_ANSWERED = ("first_contact", "completed", *CLOSING_STATUSES)


@dataclass(frozen=True)
class MeasureQuery:
    """Which period, pathway and care team a report covers, within ``organisation`` and ``teams`` (the
    caller's scope: engine.care_teams; ``organisation`` None: every organisation, for an unscoped
    caller; ``teams`` None: every team of it). A team is one of that organisation's (``team`` for a
    caller reaching every organisation matches that team in any); a caller limited to some teams
    counts only their patients, and may choose only one of them.

    Raises:
        InvalidInputError: ``until`` not after ``since``, a period longer than :data:`MAX_PERIOD_DAYS`,
            a naive time, a pathway id or team that is not one, a team outside ``teams``.
    """

    since: datetime
    until: datetime
    pathway_id: str | None = None
    team: str | None = None
    organisation: str | None = None
    teams: frozenset[str] | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.since.tzinfo is None or self.until.tzinfo is None:
            problems.append(Problem("must carry a time zone", field="from"))
        elif self.until <= self.since:
            problems.append(Problem("must be after from", field="to"))
        elif self.until - self.since > timedelta(days=MAX_PERIOD_DAYS):
            problems.append(Problem(f"a report covers at most {MAX_PERIOD_DAYS} days", field="to"))
        if self.pathway_id is not None and not PATHWAY_PATTERN.match(self.pathway_id):
            problems.append(Problem("is not a pathway id", field="pathway"))
        if self.team is not None and not _TEAM.match(self.team):
            problems.append(Problem("is not a care team's identifier", field="team"))
        elif self.team is not None and self.teams is not None and self.team not in self.teams:
            problems.append(Problem("is not one of the care teams you reach", field="team"))
        if problems:
            raise InvalidInputError("the report's period or filters are not valid", problems)

    @classmethod
    def of(
        cls,
        since: datetime | None,
        until: datetime | None,
        pathway_id: str | None = None,
        team: str | None = None,
        *,
        now: datetime,
        organisation: str | None = None,
        teams: frozenset[str] | None = None,
    ) -> MeasureQuery:
        """A query with the defaults filled in: until now, from a year (365 days) before ``until``.

        Raises:
            InvalidInputError: as the constructor does.
        """
        until = now if until is None else until
        return cls(
            until - timedelta(days=DEFAULT_PERIOD_DAYS) if since is None else since,
            until,
            pathway_id,
            team,
            organisation,
            teams if organisation is not None else None,
        )

    def placed(self, instance_id: Any) -> list[Any]:
        """The SQL conditions keeping rows whose instance (``instance_id``, a column) is of the query's
        organisation and team (or teams): none when the query names neither."""
        if self.organisation is None and self.team is None:
            return []
        where = [PathwayInstance.organisation == self.organisation] if self.organisation is not None else []
        if self.team is not None:
            where.append(PathwayInstance.care_team == self.team)
        elif self.teams is not None and self.organisation is not None:
            where.append(PathwayInstance.care_team.in_(sorted(self.teams)) if self.teams else false())
        return [instance_id.in_(select(PathwayInstance.id).where(*where))]

    def holds(self, at: datetime | None) -> bool:
        return at is not None and self.since <= at < self.until


@dataclass(frozen=True)
class Windowed:
    """A measure counted per patient: who is in the denominator (from when), and their deadline."""

    id: str
    title: str
    start: Callable[[InstanceFacts], datetime | None]
    outcome: str
    window: Callable[[datetime], datetime] | None


def _plus_days(days: int) -> Callable[[datetime], datetime]:
    return lambda at: at + timedelta(days=days)


MEASURES: tuple[Windowed, ...] = (
    Windowed(
        "hna_offered_31d",
        "HNA offered within 31 days of diagnosis",
        lambda f: f.diagnosed_at,
        "hna_offered",
        _plus_days(31),
    ),
    Windowed(
        "hna_completed_31d",
        "HNA completed within 31 days of diagnosis",
        lambda f: f.diagnosed_at,
        "hna_completed",
        _plus_days(31),
    ),
    Windowed(
        "care_plan_agreed",
        "Care and support plan agreed after an HNA",
        lambda f: f.first("hna_completed"),
        "plan_agreed",
        None,
    ),
    Windowed(
        "eot_summary_6w",
        "End of Treatment Summary within 6 weeks of treatment end",
        lambda f: f.first("treatment_ended"),
        "eot_summary",
        _plus_days(42),
    ),
    Windowed(
        "cancer_care_review_12m",
        "Cancer care review within 12 months of diagnosis",
        lambda f: f.diagnosed_at,
        "care_review",
        lambda at: add_months(at, 12),
    ),
)


def compute_measures(
    cohort: Cohort, query: MeasureQuery, as_of: datetime, timeframes: ReferralTimeframes | None = None
) -> dict[str, Any]:
    """The report (unsuppressed: pass it to :func:`suppress` before it leaves the engine); referrals
    are due by ``timeframes`` (the deployment's; the defaults when None)."""
    timeframes = ReferralTimeframes() if timeframes is None else timeframes
    instances = [f for f in cohort.instances if query.pathway_id in (None, f.pathway_id)]
    wanted = {f.instance_id for f in instances}
    items = [item for item in cohort.items if item.instance_id in wanted]
    return {
        "from": query.since.isoformat(),
        "to": query.until.isoformat(),
        "pathway": query.pathway_id,
        "team": query.team,
        "as_of": as_of.isoformat(),
        "measures": [_windowed(measure, instances, query, as_of) for measure in MEASURES],
        "referrals": _referrals([item for item in items if item.kind == "referral"], query, as_of, timeframes),
        "declined": _declined(items, query),
        "warning_signs": _warning_signs(instances, query),
    }


def _windowed(
    measure: Windowed, instances: Iterable[InstanceFacts], query: MeasureQuery, as_of: datetime
) -> dict[str, Any]:
    met = missed = pending = 0
    for facts in instances:
        start = measure.start(facts)
        if not query.holds(start):
            continue
        assert start is not None
        deadline = measure.window(start) if measure.window else None
        done = facts.first(measure.outcome, after=start)
        if done is not None and (deadline is None or done <= deadline):
            met += 1
        elif deadline is None or as_of <= deadline:
            pending += 1
        else:
            missed += 1
    return {
        "id": measure.id,
        "title": measure.title,
        "numerator": met,
        "denominator": met + missed,
        "pending": pending,
        "rate": _rate(met, met + missed),
    }


def referral_deadline(referred_at: datetime, urgency: str, timeframes: ReferralTimeframes) -> datetime | None:
    """When a referral of ``urgency`` made at ``referred_at`` is due: the deployment's deadline
    (``CAREPATH_REFERRAL_TIMEFRAMES``, ``CAREPATH_TIME_ZONE``, ``CAREPATH_HOLIDAYS``), the one escalation
    holds it to (:meth:`~engine.settings.ReferralTimeframes.due`); None for an urgency with no timeframe
    (an item whose urgency is not known is not counted as overdue)."""
    return timeframes.due(referred_at, urgency) if timeframes.knows(urgency) else None


def _overdue(referral: ItemFacts, as_of: datetime, timeframes: ReferralTimeframes) -> bool:
    assert referral.referred_at is not None
    deadline = referral_deadline(referral.referred_at, referral.urgency or "", timeframes)
    if deadline is None:
        return False
    answered = min((at for status, at in referral.moved.items() if status in _ANSWERED), default=None)
    return (answered or as_of) > deadline


def _referrals(
    referrals: Iterable[ItemFacts], query: MeasureQuery, as_of: datetime, timeframes: ReferralTimeframes
) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[ItemFacts]] = {}
    for referral in referrals:
        if query.holds(referral.referred_at):
            groups.setdefault((referral.service or "unknown", referral.urgency or "unknown"), []).append(referral)
    rows = []
    for (service, urgency), group in sorted(groups.items()):
        accepted = [_days(r.referred_at, r.moved["accepted"]) for r in group if "accepted" in r.moved]
        contacted = [_days(r.referred_at, r.moved["first_contact"]) for r in group if "first_contact" in r.moved]
        overdue = sum(1 for r in group if _overdue(r, as_of, timeframes))
        rows.append(
            {
                "service": service,
                "urgency": urgency,
                "referred": len(group),
                "accepted": len(accepted),
                "median_days_to_acceptance": _median(accepted),
                "first_contact": len(contacted),
                "median_days_to_first_contact": _median(contacted),
                "overdue": overdue,
                "overdue_share": _rate(overdue, len(group)),
            }
        )
    return rows


def _declined(items: Iterable[ItemFacts], query: MeasureQuery) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str], int] = {}
    for item in items:
        if query.holds(item.closed_at):
            counts[(item.kind, item.status)] = counts.get((item.kind, item.status), 0) + 1
    return [{"kind": kind, "reason": reason, "count": count} for (kind, reason), count in sorted(counts.items())]


def _warning_signs(instances: Iterable[InstanceFacts], query: MeasureQuery) -> list[dict[str, Any]]:
    """Reports in the period by the colour the triage gave them. Within an instance the n-th report is
    matched with the n-th triage and the n-th rating (the trail does not link a message to the
    sub-pathway it started; reports triaged out of order are timed against each other's report)."""
    hours: dict[str, list[float]] = {}
    for facts in instances:
        triaged = facts.milestones.get("triaged", [])
        for index, reported in enumerate(facts.warning_reports):
            if not query.holds(reported):
                continue
            colour = facts.ratings[index][1] if index < len(facts.ratings) else "not triaged"
            took = hours.setdefault(colour, [])
            if index < len(triaged):
                took.append((triaged[index] - reported).total_seconds() / 3600)
            else:
                took.append(float("nan"))
    rows = []
    for colour in sorted(hours, key=lambda c: ("red", "amber", "green", "not triaged").index(c)):
        times = [h for h in hours[colour] if h == h]  # NaN: not triaged yet
        rows.append(
            {
                "colour": colour,
                "reports": len(hours[colour]),
                "triaged": len(times),
                "median_hours_to_triage": _median(times),
            }
        )
    return rows


def _days(start: datetime | None, end: datetime) -> float:
    assert start is not None
    return (end - start).total_seconds() / 86400


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


# --- suppression ---------------------------------------------------------------------------------------

_COUNTS = {
    "numerator",
    "denominator",
    "pending",
    "referred",
    "accepted",
    "first_contact",
    "overdue",
    "count",
    "reports",
    "triaged",
}
# A derived value -> the counts it is worked out from: blanked when any of them is.
_DERIVED = {
    "rate": ("numerator", "denominator"),
    "median_days_to_acceptance": ("accepted",),
    "median_days_to_first_contact": ("first_contact",),
    "overdue_share": ("overdue", "referred"),
    "median_hours_to_triage": ("triaged",),
}
# A count -> the total it is part of: blanked when the difference would be a small count.
_PARTS = {
    "numerator": "denominator",
    "accepted": "referred",
    "first_contact": "referred",
    "overdue": "referred",
    "triaged": "reports",
}


def _small(value: Any, threshold: int) -> bool:
    return isinstance(value, int) and 0 < value < threshold


def _suppress_row(row: dict[str, Any], threshold: int) -> dict[str, Any]:
    hidden = {name for name in _COUNTS if _small(row.get(name), threshold)}
    for part, total in _PARTS.items():
        if (
            isinstance(row.get(part), int)
            and isinstance(row.get(total), int)
            and _small(row[total] - row[part], threshold)
        ):
            hidden.add(part)
    hidden |= {name for name, over in _DERIVED.items() if name in row and hidden & set(over)}
    out = {name: (None if name in hidden else value) for name, value in row.items()}
    out["suppressed"] = sorted(hidden)
    return out


def suppress(report: dict[str, Any], threshold: int) -> dict[str, Any]:
    """The report with every count from 1 to ``threshold - 1`` blanked (None), and everything that
    would give one away; each row lists what was blanked in ``suppressed``. Zero is shown: it singles
    no one out."""
    out = dict(report)
    out["suppression_threshold"] = threshold
    for section in ("measures", "referrals", "declined", "warning_signs"):
        out[section] = [_suppress_row(row, threshold) for row in report[section]]
    return out
