"""Service insight: the personalised care measures a cancer service reports, the COSD-shaped export of
its personalised care fields, and the charts of both (docs/measures.md).

Owns: reading the facts the measures need from the event trail and the care plans (``facts``: never
free text, never task data), the measures' definitions and their suppression of small counts
(``measures``, ``trends``), the summary tables the worker refreshes from those facts and the reports
aggregate (``summary``), the export (``cosd``), tables and CSV (``tables``) and server-rendered SVG
charts (``charts``). It writes only its own summary tables, never the trail or the care plans.

May import: ``engine.db`` (the tables it reads), ``engine.care_teams`` (a team's identifier),
``engine.access_log`` (the COSD export names the patients it exports) and the shared modules
(settings, clock, errors, calendar). Never ``engine.instances`` or ``engine.careplan``: what it
knows of them is the rows they wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.reports.cosd import COSD_COLUMNS, MAX_EXPORT_ROWS, cosd_csv, cosd_rows, cosd_table
from engine.reports.facts import Cohort, load_cohort
from engine.reports.measures import MEASURES, MeasureQuery, compute_measures, referral_deadline, suppress
from engine.reports.summary import read_measures, read_trends, refresh_summary, stale_instances
from engine.reports.tables import MEASURE_TABLE_COLUMNS, csv_of_texts, csv_text, measure_table
from engine.reports.trends import Trend
from engine.settings import ReferralTimeframes

__all__ = [
    "COSD_COLUMNS",
    "MAX_EXPORT_ROWS",
    "MEASURES",
    "MEASURE_TABLE_COLUMNS",
    "Cohort",
    "Insight",
    "MeasureQuery",
    "Trend",
    "compute_measures",
    "cosd_csv",
    "cosd_rows",
    "cosd_table",
    "csv_of_texts",
    "csv_text",
    "load_cohort",
    "measure_table",
    "measures_report",
    "referral_deadline",
    "refresh_summary",
    "service_insight",
    "stale_instances",
    "suppress",
]


def measures_report(
    session: Session, query: MeasureQuery, as_of: datetime, min_count: int, timeframes: ReferralTimeframes
) -> dict[str, Any]:
    """The measures of ``query``'s period and pathway as of ``as_of``, read from the summary
    (:func:`refresh_summary` brings it up to date), small counts suppressed below ``min_count``
    (Settings.report_min_count); ``timeframes``: the deployment's (Settings.referral_timeframes)."""
    return suppress(read_measures(session, query, as_of, timeframes=timeframes), min_count)


@dataclass(frozen=True)
class Insight:
    """What the manager page shows: the measures, and the same facts over time (all suppressed)."""

    report: dict[str, Any]
    monthly: Trend
    weekly_referrals: Trend
    backlog: Trend


def service_insight(
    session: Session, query: MeasureQuery, as_of: datetime, min_count: int, timeframes: ReferralTimeframes
) -> Insight:
    """The measures of ``query`` with their monthly rates, weekly referrals by urgency and the weekly
    backlog of open referrals, read from the summary."""
    monthly, weekly, backlog, counts = read_trends(session, query, as_of, min_count)
    report = suppress(read_measures(session, query, as_of, monthly=counts, timeframes=timeframes), min_count)
    return Insight(report, monthly, weekly, backlog)
