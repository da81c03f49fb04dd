"""Everything CarePath holds about one patient, as one JSON document: for the data protection officer who
answers a subject access request (UK GDPR Article 15, "right of access"; in Sweden the same article of the
GDPR, a *registerutdrag*), within the month the law gives.

Keyed by the patient's reference, across every organisation and team (the request is the patient's, not an
organisation's), it gathers:

* each pathway instance: pathway and version, status, organisation and care team, dates, the data its forms
  and messages recorded (the answers, the treatment status), its ready tasks and its event trail (types,
  times, actors, elements: the trail holds no values);
* each care plan: its items, their status and history;
* each end of treatment summary's phase (dates and state);
* each rule evaluation: the facts it read, the rules that fired and what they proposed;
* the death record, if any; the identities linked to the patient's reference;
* who looked at the patient's records (the access log: actor, time, route, reason for a break-glass read).

Nothing is left out for being awkward: the officer reviews the document before it is released (third
parties named in it, such as staff identifiers, are theirs to consider). The export is itself recorded in
the access log, one row per instance read, under ``subject_access.export``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from engine.access_log import Access, ReadFilter, list_reads, record_reads
from engine.db.models import InstanceEvent, PathwayInstance
from engine.db.session import read_only
from engine.instances.view import validate_patient_ref
from engine.patients import list_identities
from engine.rules.store import list_evaluations

if TYPE_CHECKING:
    from engine.app import CarePath

__all__ = ["EXPORT_ACTION", "subject_access_export"]

EXPORT_ACTION = "subject_access.export"
_ACCESS_PAGE = 200  # engine.access_log.MAX_LIMIT
MAX_ACCESS_ROWS = 100_000  # a bound on the export's size; more is said, never silently cut


def subject_access_export(carepath: CarePath, patient_ref: str, actor: str) -> dict[str, Any]:
    """What CarePath holds about ``patient_ref`` (see the module's docstring), and a row per instance read in
    the access log under ``actor``.

    Raises:
        InvalidInputError: ``patient_ref`` is not a patient reference.
    """
    validate_patient_ref(patient_ref)
    now = carepath.clock.now()
    with read_only(carepath.sessions) as session:
        ids = list(
            session.scalars(
                select(PathwayInstance.id)
                .where(PathwayInstance.patient_ref == patient_ref)
                .order_by(PathwayInstance.created_at, PathwayInstance.id)
            )
        )
        identities = [link.as_dict() for link in list_identities(session, patient_ref, limit=1000)]
        accesses, more = _accesses(session, patient_ref)
    instances = [_instance(carepath, instance_id) for instance_id in ids]
    death = carepath.instances.death_record(patient_ref)
    record_reads(
        carepath.sessions,
        Access(at=now, actor=actor, action=EXPORT_ACTION, route="carepath patients export", status=200, request_id=""),
        ids,
    )
    return {
        "patient_ref": patient_ref,
        "exported_at": now.isoformat(),
        "exported_by": actor,
        "instances": instances,
        "death_record": death,
        "identities": identities,
        "accesses": accesses,
        "accesses_complete": not more,
    }


def _instance(carepath: CarePath, instance_id: str) -> dict[str, Any]:
    view = carepath.instances.get(instance_id)
    with read_only(carepath.sessions) as session:
        events = [
            {"seq": e.seq, "type": e.type, "at": e.at.isoformat(), "actor": e.actor, "element": e.element}
            for e in session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.seq)
            )
        ]
        evaluations = [
            {
                "id": r.id,
                "at": r.created_at.isoformat(),
                "ruleset": r.ruleset_name,
                "ruleset_version": r.ruleset_version,
                "facts": list(r.facts),
                "firings": list(r.fired),
                "outcomes": dict(r.outcomes),
            }
            for r in list_evaluations(session, instance_id=instance_id)
        ]
    return {
        "id": view.id,
        "pathway_id": view.pathway_id,
        "pathway_version": view.pathway_version,
        "status": view.status,
        "organisation": view.organisation,
        "care_team": view.care_team,
        "created_at": _iso(view.created_at),
        "updated_at": _iso(view.updated_at),
        "data": carepath.instances.instance_data(instance_id),
        "ready_tasks": [{"name": t["name"], "element": t["element"]} for t in view.ready_tasks],
        "care_plan": carepath.care_plans.get(instance_id).as_dict(),
        "end_of_treatment_summaries": carepath.treatment_summaries.list_phases(instance_id),
        "rule_evaluations": evaluations,
        "events": events,
    }


def _accesses(session: Any, patient_ref: str) -> tuple[list[dict[str, Any]], bool]:
    """Who looked at the patient's records, newest first, at most :data:`MAX_ACCESS_ROWS`; and whether there
    were more."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(found) < MAX_ACCESS_ROWS:
        page, cursor = list_reads(session, ReadFilter(patient_ref=patient_ref), cursor, _ACCESS_PAGE)
        found += page
        if cursor is None:
            return found, False
    return found[:MAX_ACCESS_ROWS], True


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value
