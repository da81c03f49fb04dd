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
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload, load_only

from engine.db.models import PathwayInstance
from engine.errors import InvalidInputError, Problem
from engine.reports.facts import InstanceFacts, ItemFacts, load_cohort
from engine.reports.measures import MeasureQuery

__all__ = ["COSD_COLUMNS", "MAX_EXPORT_ROWS", "cosd_rows"]

# Patient-level milestone column -> the milestone whose first date it holds (engine.reports.facts.MILESTONES).
_MILESTONE_COLUMNS = {"hna_offered_date": "hna_offered", "hna_completed_date": "hna_completed",
                      "care_plan_agreed_date": "plan_agreed", "treatment_end_date": "treatment_ended",
                      "eot_summary_date": "eot_summary", "cancer_care_review_date": "care_review"}
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
    (started, a milestone reached, a care plan item proposed or moved), ordered by patient.

    Raises:
        InvalidInputError: more than :data:`MAX_EXPORT_ROWS` rows (field ``to``: narrow the period).
    """
    cohort = load_cohort(session, query.pathway_id, query.until)
    moved = {item.instance_id for item in cohort.items if any(query.holds(at) for at in item.moved.values())}
    active = [facts for facts in cohort.instances if query.pathway_id in (None, facts.pathway_id)
              and (facts.instance_id in moved or _active(facts, query))]
    by_instance: dict[str, list[ItemFacts]] = {}
    for item in cohort.items:
        by_instance.setdefault(item.instance_id, []).append(item)
    if sum(max(1, len(by_instance.get(f.instance_id, []))) for f in active) > MAX_EXPORT_ROWS:
        raise InvalidInputError("the export is too large", [Problem(
            f"more than {MAX_EXPORT_ROWS} rows: ask for a shorter period", field="to")])
    refs = dict(_patient_refs(session, [facts.instance_id for facts in active]))
    rows = []
    for facts in sorted(active, key=lambda f: (refs.get(f.instance_id, ""), f.instance_id)):
        patient = _patient_columns(facts, refs.get(facts.instance_id, ""))
        items = by_instance.get(facts.instance_id, [])
        rows += [{**patient, **_item_columns(item)} for item in items] or [{**patient, **_item_columns(None)}]
    return rows


def _active(facts: InstanceFacts, query: MeasureQuery) -> bool:
    return query.holds(facts.diagnosed_at) or any(query.holds(at) for dates in facts.milestones.values()
                                                  for at in dates)


def _patient_refs(session: Session, instance_ids: list[str]) -> Iterator[tuple[str, str]]:
    """Each instance's patient reference, loaded as ORM rows so the access log sees them."""
    for start in range(0, len(instance_ids), _CHUNK):
        chunk = instance_ids[start:start + _CHUNK]
        for instance in session.scalars(select(PathwayInstance).where(PathwayInstance.id.in_(chunk)).options(
                load_only(PathwayInstance.id, PathwayInstance.patient_ref), lazyload(PathwayInstance.pathway_version))):
            yield instance.id, instance.patient_ref


def _date(at: datetime | None) -> str:
    return at.date().isoformat() if at is not None else ""


def _patient_columns(facts: InstanceFacts, patient_ref: str) -> dict[str, str]:
    columns = {"patient_ref": patient_ref, "pathway_id": facts.pathway_id, "instance_id": facts.instance_id,
               "diagnosis_date": _date(facts.diagnosed_at)}
    columns.update({column: _date(facts.first(milestone)) for column, milestone in _MILESTONE_COLUMNS.items()})
    return columns


def _item_columns(item: ItemFacts | None) -> dict[str, Any]:
    if item is None:
        return {column: "" for column in ("item_kind", "item_code", "service", "urgency", "item_status",
                                          *_ITEM_DATES, "ended_date")}
    columns = {"item_kind": item.kind, "item_code": item.code, "service": item.service or "",
               "urgency": item.urgency or "", "item_status": item.status}
    columns.update({column: _date(item.moved.get(status)) for column, status in _ITEM_DATES.items()})
    columns["ended_date"] = _date(item.closed_at)
    return columns
