"""Reads do not queue behind writes, and a read-only unit of work writes nothing.

On SQLite every transaction used to take the write lock up front (``BEGIN IMMEDIATE``), so an API
read waited for any step running in another request or process (up to the 30 s busy timeout).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from engine import CarePath
from engine.db.models import PathwayInstance
from engine.db.session import read_only
from engine.instances.queries import InstanceFilter, InstanceQueries


def test_reads_proceed_while_another_connection_holds_a_write(carepath: CarePath) -> None:
    view = carepath.instances.start("test_assessment", "MRN-READ-1", "system:ehr")
    queries = InstanceQueries(carepath.sessions, carepath.instances)
    carepath.instances.steps.cache.clear()  # the read must go to the database
    writer = create_engine(carepath.settings.database_url)
    done = threading.Event()
    seen: dict[str, Any] = {}

    def read() -> None:
        try:
            seen["view"] = carepath.instances.get(view.id)
            seen["page"] = queries.find(InstanceFilter(patient_ref="MRN-READ-1"))
            seen["events"] = queries.events(view.id)
        except Exception as exc:  # reported by the assertions below
            seen["error"] = exc
        finally:
            done.set()

    with writer.connect() as connection:
        # An uncommitted step elsewhere: it holds SQLite's write lock until it ends.
        connection.execute(text("UPDATE pathway_instances SET status = 'suspended' WHERE id = :id"), {"id": view.id})
        reader = threading.Thread(target=read)
        reader.start()
        finished_while_writer_held_the_lock = done.wait(20)
        connection.rollback()
    reader.join()
    writer.dispose()
    assert finished_while_writer_held_the_lock, "the read waited for the writer"
    assert "error" not in seen, seen.get("error")
    assert seen["view"].status == "running"  # the committed state, not the uncommitted write
    assert [item["id"] for item in seen["page"].items] == [view.id]
    assert seen["events"][0]["type"] == "started"


def test_a_read_only_unit_that_changes_rows_fails_and_writes_nothing(carepath: CarePath) -> None:
    view = carepath.instances.start("test_assessment", "MRN-READ-2", "system:ehr")
    with pytest.raises(RuntimeError, match="read-only"), read_only(carepath.sessions) as session:
        row = session.get(PathwayInstance, view.id)
        assert row is not None
        row.status = "cancelled"
    with read_only(carepath.sessions) as session:
        assert session.scalar(select(PathwayInstance.status).where(PathwayInstance.id == view.id)) == "running"


def test_a_read_only_unit_reads_one_snapshot(carepath: CarePath) -> None:
    # A document or a page of the work list is read in several statements; a step committed in
    # between must not show in some of them and not in others.
    view = carepath.instances.start("test_assessment", "MRN-READ-3", "system:ehr")
    other = create_engine(carepath.settings.database_url)
    query = select(PathwayInstance.status).where(PathwayInstance.id == view.id)
    try:
        with read_only(carepath.sessions) as session:
            assert session.scalar(query) == "running"
            with other.begin() as connection:
                connection.execute(
                    text("UPDATE pathway_instances SET status = 'suspended' WHERE id = :id"), {"id": view.id}
                )
            assert session.scalar(query) == "running"
        with read_only(carepath.sessions) as session:
            assert session.scalar(query) == "suspended"
    finally:
        other.dispose()
