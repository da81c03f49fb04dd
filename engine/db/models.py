"""Tables of the pathway engine: pathway versions, instances and their event trail."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from engine.db.base import Base

__all__ = ["InstanceEvent", "PathwayInstance", "PathwayVersion", "UTCDateTime"]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:

        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None


class PathwayVersion(Base):
    """One version of one pathway: its diagram files and its compiled spec, stored once."""

    __tablename__ = "pathway_versions"
    __table_args__ = (UniqueConstraint("pathway_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pathway_id: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    main_file: Mapped[str] = mapped_column(String(300))
    # Large and immutable: loaded only when asked for (the spec once per process, then cached).
    files: Mapped[str] = mapped_column(Text, deferred=True)  # JSON {name: text}
    spec: Mapped[str] = mapped_column(Text, deferred=True)  # JSON: {"spec": ..., "subprocess_specs": ...}
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deployed_by: Mapped[str] = mapped_column(String(200))


class PathwayInstance(Base):
    """One patient's run of one pathway version.

    ``state`` holds SpiffWorkflow's instance state without the spec. ``revision`` is the
    optimistic lock every change checks; clients see it as the instance version (ETag).
    """

    __tablename__ = "pathway_instances"
    __table_args__ = (
        Index("ix_pathway_instances_status_next_due_at", "status", "next_due_at"),
        Index("ix_pathway_instances_patient_ref_pathway_id", "patient_ref", "pathway_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pathway_id: Mapped[str] = mapped_column(String(200), index=True)
    pathway_version_id: Mapped[int] = mapped_column(ForeignKey("pathway_versions.id"), index=True)
    patient_ref: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), index=True)
    state: Mapped[str] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    incident: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {element, message, at}
    # JSON list of the ready tasks as of the last save, without their forms (engine.spiff.workflows.ready_task_summary):
    # work lists read it instead of restoring every instance. NULL: saved before it existed.
    ready_tasks: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Head of the hash-chained event trail (see engine.audit): catches deletion of the newest event.
    event_seq: Mapped[int] = mapped_column(Integer, default=0)
    event_head: Mapped[str] = mapped_column(String(64), default="0" * 64)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    pathway_version: Mapped[PathwayVersion] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": revision}


class InstanceEvent(Base):
    """The append-only event trail, hash-chained per instance.

    ``payload`` never holds patient data: task data appears only as a digest.
    """

    __tablename__ = "instance_events"
    __table_args__ = (UniqueConstraint("instance_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("pathway_instances.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    pathway_version: Mapped[str] = mapped_column(String(64))
    element: Mapped[str | None] = mapped_column(String(200), nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    # Declared so the unit of work inserts an instance before its first events.
    instance: Mapped[PathwayInstance] = relationship(lazy="raise")
