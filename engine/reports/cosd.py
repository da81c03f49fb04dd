"""The personalised care fields in the shape the Cancer Outcomes and Services Dataset (COSD) asks for:
one row per patient and care plan item (a patient with no item: one row with the item's columns
empty), with dates, for a data team to map onto the COSD version they submit (docs/measures.md).

Unlike the measures, this is patient-level data: its rows name the patient (``patient_ref``), and
every exported instance is named to the access log (:func:`engine.access_log.saw`), as loading it
would name it, so the API records each patient whose rows left.

At scale (docs/measures.md, "At scale") the export is one statement over plain columns of the
summary (engine.reports.summary) and the instances, whatever the size of the cohort: no ORM objects,
no query per instance or per chunk of instances. Its rows arrive from the database in batches
(``yield_per``) and are turned into the export's rows as they come.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, collate, func, or_, select, union
from sqlalchemy.orm import Session

from engine.access_log import saw
from engine.db.models import PathwayInstance, ReportItem, ReportMeasureRow
from engine.errors import InvalidInputError, Problem
from engine.reports.measures import MeasureQuery

__all__ = ["COSD_COLUMNS", "MAX_EXPORT_ROWS", "cosd_rows", "cosd_statement"]

# Patient-level milestone column -> where the summary keeps its first date: (measure, start_at | done_at).
_MILESTONE_COLUMNS = {"hna_offered_date": ("hna_offered_31d", "done_at"),
                      "hna_completed_date": ("hna_completed_31d", "done_at"),
                      "care_plan_agreed_date": ("care_plan_agreed", "done_at"),
                      "treatment_end_date": ("eot_summary_6w", "start_at"),
                      "eot_summary_date": ("eot_summary_6w", "done_at"),
                      "cancer_care_review_date": ("cancer_care_review_12m", "done_at")}
_DIAGNOSIS = ("hna_offered_31d", "start_at")  # the started event, as the first measure's start keeps it
# Item column -> the status whose first date it holds.
_ITEM_DATES = {"proposed_date": "proposed", "agreed_date": "agreed", "referred_date": "referred",
               "accepted_date": "accepted", "first_contact_date": "first_contact", "completed_date": "completed"}
_ITEM_CODES = ("item_kind", "item_code", "service", "urgency", "item_status")
COSD_COLUMNS: tuple[str, ...] = ("patient_ref", "pathway_id", "instance_id", "diagnosis_date", *_MILESTONE_COLUMNS,
                                 *_ITEM_CODES, *_ITEM_DATES, "ended_date")
MAX_EXPORT_ROWS = 250_000  # a period's export is held in memory: narrow the period past this
_BATCH = 2000  # rows fetched from the database at a time


def cosd_statement(query: MeasureQuery, dialect: str) -> Select[Any]:
    """The one statement the export reads (``dialect``: the database's, for its byte-order collation):
    per exported instance and care plan item, the patient reference, the pathway, the milestones'
    first dates (one column each, pivoted from the summary's measure rows) and the item's codes and
    dates, in the export's order -- by patient reference, instance, then the item's proposal."""
    r, i, pi = ReportMeasureRow, ReportItem, PathwayInstance
    item_times = [getattr(i, f"{status}_at") for status in (*_ITEM_DATES.values(), "closed")]
    active = union(
        select(r.instance_id).where(*_pathway(r.pathway_id, r.instance_id, query),
                                    or_(_within(r.start_at, query), _within(r.done_at, query))),
        select(i.instance_id).where(*_pathway(i.pathway_id, i.instance_id, query),
                                    or_(*(_within(at, query) for at in item_times)))).subquery("active")
    pivoted = [func.max(case((r.measure == measure, getattr(r, field)))).label(column)
               for column, (measure, field) in (("diagnosis_date", _DIAGNOSIS), *_MILESTONE_COLUMNS.items())]
    milestones = (select(r.instance_id, func.max(r.pathway_id).label("pathway_id"), *pivoted)
                  .where(r.instance_id.in_(select(active.c.instance_id))).group_by(r.instance_id)
                  .subquery("milestones"))
    # Python's order of strings (code points) is the bytes' order of UTF-8: the same order on both databases.
    binary = "C" if dialect == "postgresql" else "BINARY"
    return (select(pi.patient_ref, milestones.c.pathway_id, active.c.instance_id,
                   *(milestones.c[column] for column in ("diagnosis_date", *_MILESTONE_COLUMNS)),
                   i.kind, i.code, i.service, i.urgency, i.status, *item_times)
            .select_from(active).join(pi, pi.id == active.c.instance_id)
            .outerjoin(milestones, milestones.c.instance_id == active.c.instance_id)
            .outerjoin(i, i.instance_id == active.c.instance_id)
            .order_by(collate(pi.patient_ref, binary), collate(active.c.instance_id, binary), i.proposed_at,
                      collate(i.item_id, binary)))


def cosd_rows(session: Session, query: MeasureQuery) -> list[dict[str, str]]:
    """The export's rows for the patients with any personalised care activity in ``query``'s period
    (diagnosed, a measure's milestone reached, a care plan item proposed or moved), ordered by
    patient; read from the summary (engine.reports.summary, refreshed by the worker) in one statement.

    Raises:
        InvalidInputError: more than :data:`MAX_EXPORT_ROWS` rows (field ``to``: narrow the period).
    """
    statement = cosd_statement(query, session.get_bind().dialect.name)
    rows: list[dict[str, str]] = []
    exported: set[str] = set()
    result = session.execute(statement, execution_options={"yield_per": _BATCH})
    try:  # a refused export stops reading: its server-side cursor is closed here, not left to the collector
        for found in result:
            if len(rows) == MAX_EXPORT_ROWS:
                raise InvalidInputError("the export is too large", [Problem(
                    f"more than {MAX_EXPORT_ROWS} rows: ask for a shorter period", field="to")])
            rows.append(_row(found))
            exported.add(found[2])
    finally:
        result.close()
    saw(exported)
    return rows


def _pathway(pathway: Any, instance_id: Any, query: MeasureQuery) -> list[Any]:
    placed = query.placed(instance_id)
    return placed if query.pathway_id is None else [pathway == query.pathway_id, *placed]


def _within(column: Any, query: MeasureQuery) -> Any:
    return and_(column >= query.since, column < query.until)


def _date(at: datetime | None) -> str:
    return at.date().isoformat() if at is not None else ""


_DATED = len(_MILESTONE_COLUMNS) + 1  # the diagnosis and the milestones


def _row(found: Sequence[Any]) -> dict[str, str]:
    """One export row from one row of :func:`cosd_statement`, in :data:`COSD_COLUMNS`' order."""
    patient_ref, pathway_id, instance_id = found[0], found[1], found[2]
    milestones = found[3:3 + _DATED]
    codes = found[3 + _DATED:3 + _DATED + len(_ITEM_CODES)]
    dates = found[3 + _DATED + len(_ITEM_CODES):]
    values = [patient_ref, pathway_id or "", instance_id, *map(_date, milestones)]
    if codes[0] is None:  # no care plan item: its columns empty
        values += [""] * (len(_ITEM_CODES) + len(dates))
    else:
        values += [codes[0], codes[1], codes[2] or "", codes[3] or "", codes[4], *map(_date, dates)]
    return dict(zip(COSD_COLUMNS, values, strict=True))
