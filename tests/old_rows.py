"""Rows written by hand as an older schema revision held them, for the tests of a migration (the models
describe the newest schema only)."""

from __future__ import annotations

from sqlalchemy import Connection, text

__all__ = ["insert_pathway_version"]


def insert_pathway_version(connection: Connection, pathway_id: str = "p") -> None:
    """Version 1 (``id`` 1) of ``pathway_id``, deployed on 2026-01-01, in the columns every revision has."""
    connection.execute(
        text(
            "INSERT INTO pathway_versions (id, pathway_id, version, title, main_file, files, spec, deployed_at, "
            "deployed_by) VALUES (1, :pathway_id, 'v1', 't', 'p.bpmn', '{}', '{}', :at, 'x')"
        ),
        {"pathway_id": pathway_id, "at": "2026-01-01"},
    )
