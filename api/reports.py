"""Service insight (docs/measures.md): ``GET /v1/reports/measures``, the personalised care measures
of a period, aggregated with small counts suppressed (auditors and managers); ``GET /v1/reports/cosd``,
the COSD-shaped export of the personalised care fields, one row per patient and care plan item (the
access log records every patient it exports). Both answer JSON, or CSV with ``format=csv``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from engine.db.session import read_only
from engine.reports import (
    COSD_COLUMNS,
    MEASURE_TABLE_COLUMNS,
    MeasureQuery,
    cosd_csv,
    cosd_rows,
    csv_text,
    measure_table,
    measures_report,
)

from . import carepath
from .auth import current_principal, requires
from .openapi import NAME_PATTERN
from .parsing import query_choice, query_errors, query_str, query_time

__all__ = ["bp"]

bp = Blueprint("reports", __name__, url_prefix="/v1/reports")


def _query(team: bool = True) -> MeasureQuery:
    """The period and filters of the request, within the caller's scope (a manager or auditor token made
    with an organisation counts that organisation's patients only; a manager's with teams, those teams'
    only: an auditor's scope is always the whole organisation). Raises: ApiError 400 naming the
    parameter."""
    since, until = query_time("from"), query_time("to")
    pathway = query_str("pathway", NAME_PATTERN)
    chosen_team = query_str("team", max_length=200) if team else None
    with query_errors():
        return MeasureQuery.of(
            since,
            until,
            pathway,
            chosen_team,
            now=carepath().clock.now(),
            organisation=current_principal().scope.organisation,
            teams=current_principal().scope.teams,
        )


def _csv(text: str, name: str) -> Response:
    response = Response(text, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


@bp.get("/measures")
@requires("reports.read")
def measures() -> Any:
    as_csv = query_choice("format", ("json", "csv")) == "csv"
    query = _query()
    engine = carepath()
    with read_only(engine.sessions) as session:
        report = measures_report(
            session, query, engine.clock.now(), engine.settings.report_min_count, engine.settings.referral_timeframes
        )
    if as_csv:
        return _csv(csv_text(MEASURE_TABLE_COLUMNS, measure_table(report)), "measures")
    return report


@bp.get("/cosd")
@requires("reports.export")
def cosd() -> Any:
    as_csv = query_choice("format", ("json", "csv")) == "csv"
    query = _query(team=False)
    with query_errors(), read_only(carepath().sessions) as session:
        if as_csv:
            return _csv(cosd_csv(session, query), "cosd-personalised-care")
        rows = cosd_rows(session, query)
    return {"columns": list(COSD_COLUMNS), "rows": rows}
