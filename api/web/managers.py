"""The manager's page: a service's personalised care measures of a period (docs/measures.md), each
drawn over time, the weekly demand on its support services by urgency and the backlog of open
referrals, every chart with its numbers in a table beside it. Aggregated only, small counts
suppressed (engine.reports); the charts are SVG drawn on the server (engine.reports.charts).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Any

from flask import Blueprint, render_template, request
from markupsafe import Markup

from engine.db.session import read_only
from engine.errors import InvalidInputError, Problem
from engine.reports import MeasureQuery, service_insight
from engine.reports.charts import URGENCY_COLOURS, line_chart, stacked_bars

from .. import carepath
from .auth import page, scope
from .i18n import translate

bp = Blueprint("managers", __name__)

_PATHWAY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")


def _day(name: str) -> datetime | None:
    """A ``YYYY-MM-DD`` field (an ``<input type=date>``) as midnight UTC. Raises: InvalidInputError."""
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        if len(value) != 10:
            raise ValueError(name)
        return datetime.combine(date.fromisoformat(value), time(), UTC)
    except ValueError:
        raise InvalidInputError(
            "the period is not valid", [Problem(translate("service.bad_date"), field=name)]
        ) from None


@bp.get("/service")
@page("reports.read")
def service() -> str | tuple[str, int]:
    engine = carepath()
    now = engine.clock.now()
    pathway = request.args.get("pathway", "").strip() or None
    form = {"from": request.args.get("from", ""), "to": request.args.get("to", ""), "pathway": pathway or ""}
    try:
        if pathway is not None and not _PATHWAY.match(pathway):
            raise InvalidInputError("not a pathway", [Problem(translate("service.bad_pathway"), field="pathway")])
        # Within the user's scope: their organisation (a token made without one: every organisation's), and
        # a manager limited to care teams counts those teams' patients only.
        query = MeasureQuery.of(
            _day("from"), _day("to"), pathway, now=now, organisation=scope().organisation, teams=scope().teams
        )
    except InvalidInputError as exc:
        return render_template("web/service.html", form=form, problems=exc.problems, insight=None), 400
    with read_only(engine.sessions) as session:
        insight = service_insight(
            session, query, now, engine.settings.report_min_count, engine.settings.referral_timeframes
        )
    return render_template(
        "web/service.html",
        form=form,
        problems=[],
        insight=insight,
        query=query,
        charts=_charts(insight),
        urgency_colours=URGENCY_COLOURS,
    )


def _charts(insight: Any) -> dict[str, Markup]:
    """Each chart's SVG: drawn by engine.reports.charts, which escapes every text it is given."""
    monthly, weekly, backlog = insight.monthly, insight.weekly_referrals, insight.backlog
    return {
        "measures": Markup(
            line_chart(
                "measures",
                translate("service.measures_chart"),
                translate("service.measures_chart_desc"),
                monthly.labels,
                monthly.series,
                top=1,
                unit=translate("service.rate_unit"),
            )
        ),
        "referrals": Markup(
            stacked_bars(
                "referrals",
                translate("service.referrals_chart"),
                translate("service.referrals_chart_desc"),
                weekly.labels,
                weekly.series,
                URGENCY_COLOURS,
                unit=translate("service.referrals_unit"),
            )
        ),
        "backlog": Markup(
            line_chart(
                "backlog",
                translate("service.backlog_chart"),
                translate("service.backlog_chart_desc"),
                backlog.labels,
                backlog.series,
                unit=translate("service.referrals_unit"),
            )
        ),
    }
