"""Storing evaluations, and the exact rule and catalogue texts each one used.

Tables:

- ``rule_evaluations``: one row per evaluation: inputs (facts), rule-set name and version,
  catalogue version, the firings in order with the ids of the facts that matched each, the
  outcomes, and the pathway instance and task when it ran in a pathway.
- ``rule_versions``: every rule-file and catalogue text ever evaluated, keyed by its version
  hash, so an auditor can read exactly the rules that were used.

Functions take a :class:`~sqlalchemy.orm.Session` and never commit: the caller owns the unit of
work. No migrations here; the lead generates them from ``Base.metadata``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Table, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import UserDefinedType

from engine.clock import Clock
from engine.db.models import RuleEvaluationRecord, RuleVersionRecord
from engine.errors import NotFoundError
from engine.rules.activation import active_ruleset
from engine.rules.assessment import Assessment, Firing
from engine.rules.evaluator import Evaluation, evaluate, firings_json
from engine.rules.registry import LoadedRuleset, RuleSetRegistry

__all__ = [
    "RuleEvaluationRecord",
    "RuleVersionRecord",
    "StoredEvaluation",
    "evaluate_and_record",
    "get_evaluation",
    "list_evaluations",
    "record_evaluation",
    "record_rule_version",
]


class _EncodedJSON(UserDefinedType[str]):
    """Binds JSON text this module already encoded to a JSON column, without encoding it again.

    Only for the evaluation INSERT (its bind processor: :class:`_EvaluationInsert`); the columns
    themselves stay ``JSON``. An evaluation row is written on every rules evaluation, and most of
    its JSON is already at hand as text: the facts were encoded to send them to the engine, and
    outcomes are shared between evaluations.
    """

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "JSON"

    def bind_processor(self, dialect: Dialect) -> Callable[[str | None], Any] | None:
        if dialect.name == "sqlite":
            return None  # SQLAlchemy's JSON on SQLite stores the encoded text as it is
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            from psycopg.types.json import Json

            def as_json(text: str | None) -> Any:
                return None if text is None else Json(text, dumps=str)  # a json parameter: the text itself

            return as_json
        process = JSON().dialect_impl(dialect).bind_processor(dialect)  # other drivers: decode, bind as usual

        def decoded(text: str | None) -> Any:
            value = None if text is None else json.loads(text)
            return process(value) if process else value

        return decoded


_KNOWN = "carepath_rule_versions"
_EVALUATIONS = cast(Table, RuleEvaluationRecord.__table__)
_VERSIONS = cast(Table, RuleVersionRecord.__table__)
_JSON_COLUMNS = ("facts", "fired", "outcomes")  # bound from "<column>_json", JSON text
_EVALUATION_COLUMNS = (
    "id",
    "ruleset_name",
    "ruleset_version",
    "catalogue_version",
    "created_at",
    "instance_id",
    "task_id",
    *_JSON_COLUMNS,
)


@dataclass(frozen=True)
class _EvaluationInsert:
    """The evaluation INSERT as one dialect's driver takes it, with the bind processing of its columns.

    Written once per dialect in the driver's parameter style and run on the driver's cursor in the
    session's transaction: SQLAlchemy's execution of the same compiled statement (cache look-up,
    parameter processing, result set-up) cost more than SQLite's own insert of the row, on every
    evaluation (``bench/rules.py``). The row is the same: each value passes through its column's
    bind processor (the UTC datetime's, and the encoded JSON's above).
    """

    sql: str  # an evaluation made for no instance (no ordinal)
    sql_for_instance: str  # numbered after the instance's evaluations so far (migration 0033)
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> _EvaluationInsert:
        names = [f"{c}_json" if c in _JSON_COLUMNS else c for c in _EVALUATION_COLUMNS]
        pyformat = dialect.paramstyle in ("pyformat", "format")
        placeholders = ", ".join(f"%({name})s" if pyformat else f":{name}" for name in names)
        columns = ", ".join(_EVALUATION_COLUMNS)
        sql = f"INSERT INTO rule_evaluations ({columns}) VALUES ({placeholders})"
        # The instance's steps are serialised by its version check: of two steps that read the same
        # number, one rolls back. The index on (instance_id, ordinal) finds the last number.
        # A parameter of its own: PostgreSQL would type one parameter twice, as the column's and the filter's.
        instance = "%(of_instance)s" if pyformat else ":of_instance"
        next_ordinal = f"(SELECT COALESCE(MAX(ordinal), 0) + 1 FROM rule_evaluations WHERE instance_id = {instance})"
        sql_for_instance = f"INSERT INTO rule_evaluations ({columns}, ordinal) VALUES ({placeholders}, {next_ordinal})"
        processors = []
        for column, name in zip(_EVALUATION_COLUMNS, names, strict=True):
            column_type = _EncodedJSON() if column in _JSON_COLUMNS else _EVALUATIONS.c[column].type
            process = column_type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((name, process))
        return cls(sql, sql_for_instance, tuple(processors))

    def execute(self, session: Session, params: dict[str, Any]) -> None:
        for name, process in self.processors:
            params[name] = process(params[name])
        driver: Any = session.connection().connection.driver_connection  # in the session's transaction
        cursor = driver.cursor()
        try:
            if params["instance_id"] is None:
                cursor.execute(self.sql, params)
            else:
                cursor.execute(self.sql_for_instance, {**params, "of_instance": params["instance_id"]})
        finally:
            cursor.close()


_inserts: dict[str, _EvaluationInsert] = {}


def _evaluation_insert(session: Session) -> _EvaluationInsert:
    dialect = session.get_bind().dialect
    found = _inserts.get(dialect.name)
    if found is None:  # two threads may both build it: the same value, the last one kept
        found = _inserts[dialect.name] = _EvaluationInsert.for_dialect(dialect)
    return found


@dataclass(frozen=True)
class StoredEvaluation:
    """An evaluation read back, with the rule and catalogue texts it used."""

    id: str
    ruleset_name: str
    ruleset_version: str
    catalogue_version: str
    created_at: datetime
    instance_id: str | None
    task_id: str | None
    facts: list[dict[str, Any]]
    firings: list[Firing]
    outcomes: dict[str, Any]
    rule_source: str
    rule_path: str
    catalogue_sources: dict[str, str]


def record_rule_version(session: Session, loaded: LoadedRuleset, at: datetime) -> None:
    """Make sure the rule-file and catalogue texts of ``loaded`` are stored (once each).

    Inserted at once (``INSERT ... ON CONFLICT DO NOTHING``, safe when two workers race), so the
    evaluation row that refers to them can be inserted straight after, without a flush.
    """
    known = _known_versions(session)
    rule_file = loaded.compiled.rule_file
    if rule_file.version not in known:
        _insert_version(session, rule_file.version, "ruleset", rule_file.name, rule_file.path, rule_file.source, at)
        known.add(rule_file.version)
    if loaded.catalogue.version not in known:
        source = json.dumps(loaded.catalogue.sources, sort_keys=True, ensure_ascii=False)
        _insert_version(session, loaded.catalogue.version, "catalogue", "catalogue", "catalogues", source, at)
        known.add(loaded.catalogue.version)


def _known_versions(session: Session) -> set[str]:
    """Versions already stored in this session's transaction (forgotten on rollback)."""
    known: set[str] | None = session.info.get(_KNOWN)
    if known is None:
        known = session.info[_KNOWN] = set()
        event.listen(session, "after_soft_rollback", _forget_versions)
    return known


def _forget_versions(session: Session, previous_transaction: object) -> None:
    session.info.get(_KNOWN, set()).clear()


def _insert_version(session: Session, version: str, kind: str, name: str, path: str, source: str, at: datetime) -> None:
    row = {"version": version, "kind": kind, "name": name, "path": path, "source": source, "first_used_at": at}
    table = _VERSIONS
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).values(row).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(table).values(row).on_conflict_do_nothing()
    else:  # pragma: no cover - CarePath runs on SQLite and PostgreSQL only
        if session.get(RuleVersionRecord, version) is not None:
            return
        statement = table.insert().values(row)
    session.connection().execute(statement)


def record_evaluation(
    session: Session,
    evaluation: Evaluation,
    loaded: LoadedRuleset,
    *,
    created_at: datetime,
    instance_id: str | None = None,
    task_id: str | None = None,
) -> str:
    """Record the evaluation (and, if new, its rule and catalogue texts) in ``session``'s
    transaction; returns the evaluation id. Does not commit.

    The rule texts (when new) and the evaluation row are inserted at once, in the caller's transaction.

    Raises:
        ValueError: ``created_at`` is naive, or ``loaded`` is not the version evaluated.
    """
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware (UTC)")
    if loaded.version != evaluation.ruleset_version:
        raise ValueError("the evaluation was not made with this rule-set version")
    record_rule_version(session, loaded, created_at)
    # Not the ORM, not even Core's execution: evaluation rows are never changed after they are written.
    _evaluation_insert(session).execute(
        session,
        {
            "id": evaluation.id,
            "ruleset_name": evaluation.ruleset_name,
            "ruleset_version": evaluation.ruleset_version,
            "catalogue_version": evaluation.catalogue_version,
            "created_at": created_at,
            "instance_id": instance_id,
            "task_id": task_id,
            "facts_json": evaluation.facts_json or json.dumps(list(evaluation.facts)),
            "fired_json": evaluation.fired_json or firings_json(evaluation.firings),
            "outcomes_json": evaluation.outcomes.json_text,
        },
    )
    return evaluation.id


def evaluate_and_record(
    session: Session,
    registry: RuleSetRegistry,
    ruleset: str,
    assessment: Assessment,
    *,
    clock: Clock,
    instance_id: str | None = None,
    task_id: str | None = None,
    active_only: bool = False,
) -> Evaluation:
    """Evaluate with the current version of ``ruleset`` and add the record to ``session``; with
    ``active_only`` (four eyes), with its active version instead (:mod:`engine.rules.activation`).

    The use case the pathway integration calls; the caller commits.

    Raises:
        NotFoundError, RuleFileError: no such rule set, or its file is invalid.
        InvalidInputError: the assessment names unknown concerns.
        RuleEvaluationError: the rules engine failed.
    """
    loaded = active_ruleset(session, registry, ruleset) if active_only else registry.current(ruleset)
    evaluation = evaluate(loaded.compiled, loaded.catalogue, assessment)
    record_evaluation(session, evaluation, loaded, created_at=clock.now(), instance_id=instance_id, task_id=task_id)
    return evaluation


def get_evaluation(session: Session, evaluation_id: str) -> StoredEvaluation:
    """Read an evaluation back with the texts it used.

    Raises:
        NotFoundError: no evaluation has that id.
    """
    record = session.get(RuleEvaluationRecord, evaluation_id)
    if record is None:
        raise NotFoundError(f"no rule evaluation with id {evaluation_id}")
    rules = session.get(RuleVersionRecord, record.ruleset_version)
    catalogue = session.get(RuleVersionRecord, record.catalogue_version)
    if rules is None or catalogue is None:  # foreign keys make this unreachable on real databases
        raise NotFoundError(f"the rule texts of evaluation {evaluation_id} are missing")
    return StoredEvaluation(
        id=record.id,
        ruleset_name=record.ruleset_name,
        ruleset_version=record.ruleset_version,
        catalogue_version=record.catalogue_version,
        created_at=record.created_at,
        instance_id=record.instance_id,
        task_id=record.task_id,
        facts=list(record.facts),
        firings=[Firing(f["rule"], tuple(f["matched"])) for f in record.fired],
        outcomes=dict(record.outcomes),
        rule_source=rules.source,
        rule_path=rules.path,
        catalogue_sources=json.loads(catalogue.source),
    )


def list_evaluations(session: Session, *, instance_id: str) -> list[RuleEvaluationRecord]:
    """The evaluations made for a pathway instance, oldest first."""

    statement = (
        select(RuleEvaluationRecord)
        .where(RuleEvaluationRecord.instance_id == instance_id)
        .order_by(RuleEvaluationRecord.ordinal)
    )
    return list(session.scalars(statement))
