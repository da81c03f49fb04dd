"""The personalised care fields in the shape the Cancer Outcomes and Services Dataset (COSD) asks for:
one row per patient and care plan item (a patient with no item: one row with the item's columns
empty), with dates, for a data team to map onto the COSD version they submit (docs/measures.md).

Unlike the measures, this is patient-level data: its rows name the patient (``patient_ref``). The
instances are loaded as ORM rows so that the access log (engine.access_log) records every patient
whose row was exported, as it does for any other read of a patient's records.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, lazyload, load_only

from engine.db.models import PathwayInstance, ReportItem, ReportMeasureRow
from engine.errors import InvalidInputError, Problem
from engine.reports.measures import MeasureQuery

__all__ = ["COSD_COLUMNS", "MAX_EXPORT_ROWS", "cosd_rows"]

# Patient-level milestone column -> where the summary keeps its first date: (measure, start_at | done_at).
_MILESTONE_COLUMNS = {"hna_offered_date": ("hna_offered_31d", "done_at"),
                      "hna_completed_date": ("hna_completed_31d", "done_at"),
                      "care_plan_agreed_date": ("care_plan_agreed", "done_at"),
                      "treatment_end_date": ("eot_summary_6w", "start_at"),
                      "eot_summary_date": ("eot_summary_6w", "done_at"),
                      "cancer_care_review_date": ("cancer_care_review_12m", "done_at")}
# Item column -> the status whose first date it holds.
_ITEM_DATES = {"proposed_date": "proposed", "agreed_date": "agreed", "referred_date": "referred",
               "accepted_date": "accepted", "first_contact_date": "first_contact", "completed_date": "completed"}
COSD_COLUMNS: tuple[str, ...] = ("patient_ref", "pathway_id", "instance_id", "diagnosis_date", *_MILESTONE_COLUMNS,
                                 "item_kind", "item_code", "service", "urgency", "item_status", *_ITEM_DATES,
                                 "ended_date")
MAX_EXPORT_ROWS = 250_000  # a period's export is held in memory: narrow the period past this
_CHUNK = 500


def cosd_rows(session: Session, query: MeasureQuery) -> list[dict[str, str]]:
    """The export's rows for the patients with any personalised care activity in ``query``'s period
    (diagnosed, a measure's milestone reached, a care plan item proposed or moved), ordered by
    patient; read from the summary (engine.reports.summary, refreshed by the worker).

    Raises:
        InvalidInputError: more than :data:`MAX_EXPORT_ROWS` rows (field ``to``: narrow the period).
    """
    r, i = ReportMeasureRow, ReportItem
    active = set(session.scalars(select(r.instance_id).distinct().where(
        *_pathway(r.pathway_id, query), or_(_within(r.start_at, query), _within(r.done_at, query)))))
    active |= set(session.scalars(select(i.instance_id).distinct().where(
        *_pathway(i.pathway_id, query), or_(*(_within(getattr(i, f"{status}_at"), query)
                                              for status in (*_ITEM_DATES.values(), "closed"))))))
    ids = sorted(active)
    milestones: dict[str, dict[str, Any]] = {}
    items: dict[str, list[ReportItem]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        for row in session.execute(select(r.instance_id, r.pathway_id, r.measure, r.start_at, r.done_at)
                                   .where(r.instance_id.in_(chunk))):
            milestones.setdefault(row.instance_id, {"pathway_id": row.pathway_id})[row.measure] = row
        for item in session.scalars(select(i).where(i.instance_id.in_(chunk)).order_by(i.proposed_at, i.item_id)):
            items.setdefault(item.instance_id, []).append(item)
    if sum(max(1, len(items.get(instance_id, []))) for instance_id in ids) > MAX_EXPORT_ROWS:
        raise InvalidInputError("the export is too large", [Problem(
            f"more than {MAX_EXPORT_ROWS} rows: ask for a shorter period", field="to")])
    refs = dict(_patient_refs(session, ids))
    rows = []
    for instance_id in sorted(ids, key=lambda found: (refs.get(found, ""), found)):
        patient = _patient_columns(instance_id, refs.get(instance_id, ""), milestones.get(instance_id, {}))
        rows += [{**patient, **_item_columns(item)} for item in items.get(instance_id, [])] \
            or [{**patient, **_item_columns(None)}]
    return rows


def _pathway(column: Any, query: MeasureQuery) -> list[Any]:
    placed = query.placed(column.class_.instance_id)
    return placed if query.pathway_id is None else [column == query.pathway_id, *placed]


def _within(column: Any, query: MeasureQuery) -> Any:
    return and_(column >= query.since, column < query.until)


def _patient_refs(session: Session, instance_ids: list[str]) -> Iterator[tuple[str, str]]:
    """Each instance's patient reference, loaded as ORM rows so the access log sees them."""
    for start in range(0, len(instance_ids), _CHUNK):
        chunk = instance_ids[start:start + _CHUNK]
        for instance in session.scalars(select(PathwayInstance).where(PathwayInstance.id.in_(chunk)).options(
                load_only(PathwayInstance.id, PathwayInstance.patient_ref), lazyload(PathwayInstance.pathway_version))):
            yield instance.id, instance.patient_ref


def _date(at: datetime | None) -> str:
    return at.date().isoformat() if at is not None else ""


def _patient_columns(instance_id: str, patient_ref: str, milestones: dict[str, Any]) -> dict[str, str]:
    def at(measure: str, field: str) -> datetime | None:
        row = milestones.get(measure)
        return None if row is None else cast(datetime | None, getattr(row, field))

    columns = {"patient_ref": patient_ref, "pathway_id": str(milestones.get("pathway_id", "")),
               "instance_id": instance_id, "diagnosis_date": _date(at("hna_offered_31d", "start_at"))}
    columns.update({column: _date(at(measure, field)) for column, (measure, field) in _MILESTONE_COLUMNS.items()})
    return columns


def _item_columns(item: ReportItem | None) -> dict[str, Any]:
    if item is None:
        return {column: "" for column in ("item_kind", "item_code", "service", "urgency", "item_status",
                                          *_ITEM_DATES, "ended_date")}
    columns = {"item_kind": item.kind, "item_code": item.code, "service": item.service or "",
               "urgency": item.urgency or "", "item_status": item.status}
    columns.update({column: _date(getattr(item, f"{status}_at")) for column, status in _ITEM_DATES.items()})
    columns["ended_date"] = _date(item.closed_at)
    return columns
