"""The personalised care fields in the shape the Cancer Outcomes and Services Dataset (COSD) asks for:
one row per patient and care plan item (a patient with no item: one row with the item's columns
empty), with dates, for a data team to map onto the COSD version they submit (docs/measures.md).

Unlike the measures, this is patient-level data: its rows name the patient (``patient_ref``), and
every exported instance is named to the access log (:func:`engine.access_log.saw`), as loading it
would name it, so the API records each patient whose rows left.

At scale (docs/measures.md, "At scale") the export is two statements over plain columns of the
summary (engine.reports.summary) and the instances, whatever the size of the cohort -- which
instances had activity in the period, then their rows -- with no ORM object and no query per
instance or per chunk of instances. The database writes every value as text (dates as UTC days), and
the rows arrive in batches (``yield_per``), each becoming an export row as it comes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, String, Subquery, and_, any_, bindparam, case, collate, func, or_, select, text, union
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from engine.access_log import saw
from engine.db.models import PathwayInstance, ReportItem, ReportMeasureRow
from engine.errors import InvalidInputError, Problem
from engine.reports.measures import MeasureQuery

__all__ = ["COSD_COLUMNS", "MAX_EXPORT_ROWS", "active_instances", "cosd_rows", "cosd_statement"]

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


def active_instances(query: MeasureQuery) -> Subquery:
    """The instances with any personalised care activity in ``query``'s period: diagnosed, a measure's
    milestone reached, a care plan item proposed or moved (read from the summary)."""
    r, i = ReportMeasureRow, ReportItem
    return union(
        select(r.instance_id).where(*_pathway(r.pathway_id, r.instance_id, query),
                                    or_(_within(r.start_at, query), _within(r.done_at, query))),
        select(i.instance_id).where(*_pathway(i.pathway_id, i.instance_id, query),
                                    or_(*(_within(at, query) for at in _item_times())))).subquery("active")


def cosd_statement(instance_ids: Sequence[str], dialect: str) -> Select[*tuple[Any, ...]]:
    """The statement that reads the export's rows of ``instance_ids`` (``dialect``: the database's):
    per instance and care plan item, the patient reference, the pathway, the milestones' first days
    (one column each, pivoted from the summary's measure rows) and the item's codes and days, every
    value already text, in the export's order -- by patient reference, instance, then the item's
    proposal. The ids travel as one parameter, however many there are."""
    r, i, pi = ReportMeasureRow, ReportItem, PathwayInstance
    pivoted = [func.max(case((r.measure == measure, getattr(r, field)))) for measure, field in
               (_DIAGNOSIS, *_MILESTONE_COLUMNS.values())]
    milestones = (select(r.instance_id, func.max(r.pathway_id).label("pathway_id"),
                         *(_day(at, dialect).label(f"m{n}") for n, at in enumerate(pivoted)))
                  .where(_among(r.instance_id, instance_ids, dialect)).group_by(r.instance_id)
                  .subquery("milestones"))
    # Python's order of strings (code points) is the bytes' order of UTF-8: the same order on both databases.
    binary = "C" if dialect == "postgresql" else "BINARY"
    return (select(pi.patient_ref, func.coalesce(milestones.c.pathway_id, ""), pi.id,
                   *(func.coalesce(milestones.c[f"m{n}"], "") for n in range(len(pivoted))),
                   *(func.coalesce(code, "") for code in (i.kind, i.code, i.service, i.urgency, i.status)),
                   *(func.coalesce(_day(at, dialect), "") for at in _item_times()))
            .where(_among(pi.id, instance_ids, dialect))
            .outerjoin(milestones, milestones.c.instance_id == pi.id)
            .outerjoin(i, i.instance_id == pi.id)
            .order_by(collate(pi.patient_ref, binary), collate(pi.id, binary), i.proposed_at,
                      collate(i.item_id, binary)))


def cosd_rows(session: Session, query: MeasureQuery) -> list[dict[str, str]]:
    """The export's rows for the patients with any personalised care activity in ``query``'s period
    (:func:`active_instances`), ordered by patient; read from the summary (engine.reports.summary,
    refreshed by the worker) in two statements whatever the cohort's size.

    Raises:
        InvalidInputError: more than :data:`MAX_EXPORT_ROWS` rows (field ``to``: narrow the period).
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # Its cost estimate passes jit_above_cost, and compiling it took 7 of the 8 seconds it ran (100,000
        # instances): the plan reads the summary once, which JIT does not speed up.
        session.execute(text("SET LOCAL jit = off"))
    ids = list(session.scalars(select(active_instances(query).c.instance_id)))
    rows: list[dict[str, str]] = []
    if not ids:
        return rows
    result = session.execute(cosd_statement(ids, dialect), execution_options={"yield_per": _BATCH})
    try:  # a refused export stops reading: its server-side cursor is closed here, not left to the collector
        for found in result:
            if len(rows) == MAX_EXPORT_ROWS:
                raise InvalidInputError("the export is too large", [Problem(
                    f"more than {MAX_EXPORT_ROWS} rows: ask for a shorter period", field="to")])
            rows.append(dict(zip(COSD_COLUMNS, found, strict=True)))
    finally:
        result.close()
    saw(ids)
    return rows


def _item_times() -> list[Any]:
    return [getattr(ReportItem, f"{status}_at") for status in (*_ITEM_DATES.values(), "closed")]


def _among(column: Any, instance_ids: Sequence[str], dialect: str) -> Any:
    """``column`` is one of ``instance_ids``, given as one parameter (an IN list of 20,000 ids would be
    20,000 parameters: PostgreSQL takes at most 65,535, and plans each)."""
    if dialect == "postgresql":
        return column == any_(bindparam("instance_ids", list(instance_ids), type_=ARRAY(String)))
    listed = func.json_each(bindparam("instance_ids", json.dumps(list(instance_ids)))).table_valued("value")
    return column.in_(select(listed.c.value))


def _day(at: Any, dialect: str) -> Any:
    """The UTC calendar day (``YYYY-MM-DD``) of a time column, as text, in SQL: the rows arrive as text
    and are not parsed into datetimes only to be printed again."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", at), "YYYY-MM-DD")
    return func.substr(at, 1, 10)  # SQLite keeps a UTC time as 'YYYY-MM-DD HH:MM:SS.ffffff'


def _pathway(pathway: Any, instance_id: Any, query: MeasureQuery) -> list[Any]:
    placed = query.placed(instance_id)
    return placed if query.pathway_id is None else [pathway == query.pathway_id, *placed]


def _within(column: Any, query: MeasureQuery) -> Any:
    return and_(column >= query.since, column < query.until)
