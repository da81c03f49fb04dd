"""The access log of a large read (an export names tens of thousands of patients): on PostgreSQL one
``INSERT ... SELECT`` joins the ids to their instances, on SQLite the patients are looked up 500 at a time;
the rows are the ones small reads write, with each instance's patient and organisation."""

from __future__ import annotations

from datetime import UTC, datetime

from report_cohort import cohort, write_cohort
from sqlalchemy import select

from engine import CarePath
from engine.access_log import Access, record_reads
from engine.db.models import AccessRecord, PathwayInstance
from engine.db.session import read_only, unit_of_work

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _rows(carepath: CarePath, request_id: str) -> list[tuple[object, ...]]:
    with read_only(carepath.sessions) as session:
        return [
            tuple(r)
            for r in session.execute(
                select(
                    AccessRecord.at,
                    AccessRecord.actor,
                    AccessRecord.on_behalf_of,
                    AccessRecord.action,
                    AccessRecord.route,
                    AccessRecord.status,
                    AccessRecord.instance_id,
                    AccessRecord.patient_ref,
                    AccessRecord.organisation,
                    AccessRecord.break_glass,
                    AccessRecord.break_glass_reason,
                    AccessRecord.break_glass_note,
                )
                .where(AccessRecord.request_id == request_id)
                .order_by(AccessRecord.instance_id)
            )
        ]


def test_a_large_read_writes_the_rows_a_small_one_writes(carepath: CarePath) -> None:
    patients = {f"{letter}{n}": patient for n in range(40) for letter, patient in cohort().items()}
    with unit_of_work(carepath.sessions) as session:
        ids = sorted(write_cohort(session, patients).values())
    unknown = "00000000-0000-4000-8000-000000000000"  # read, then gone: no patient, no organisation
    assert len(ids) > 200  # many pages' worth
    access = Access(
        at=AT,
        actor="token:manager",
        action="reports.export",
        route="GET /v1/reports/cosd",
        status=200,
        request_id="large",
        on_behalf_of="dr-who",
        break_glass_reason="emergency",
        break_glass_note="a note",
    )
    assert record_reads(carepath.sessions, access, [*ids, unknown, ids[0]]) == len(ids) + 1
    small = Access(**{**access.__dict__, "request_id": "small"})
    for first in range(0, len(ids), 50):  # 50 at a time, as a list page reads them
        record_reads(carepath.sessions, small, ids[first : first + 50])
    record_reads(carepath.sessions, small, [unknown])
    large_rows = _rows(carepath, "large")
    assert large_rows == _rows(carepath, "small")
    with read_only(carepath.sessions) as session:
        refs = dict(
            session.execute(
                select(PathwayInstance.id, PathwayInstance.patient_ref).where(PathwayInstance.id.in_(ids))
            ).all()
        )
    assert {row[6]: row[7] for row in large_rows} == {**refs, unknown: None}
    assert {(row[0], row[2], row[8] is not None, row[9], row[10], row[11]) for row in large_rows} == {
        (AT, "dr-who", True, True, "emergency", "a note"),
        (AT, "dr-who", False, True, "emergency", "a note"),
    }
