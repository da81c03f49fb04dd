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

import csv
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    CTE,
    Date,
    Select,
    String,
    Subquery,
    and_,
    any_,
    bindparam,
    case,
    cast,
    collate,
    func,
    or_,
    select,
    text,
    union,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from engine.access_log import noting, saw
from engine.db.models import PathwayInstance, ReportItem, ReportMeasureRow
from engine.errors import InvalidInputError, Problem
from engine.reports.measures import MeasureQuery
from engine.reports.tables import csv_of_texts

__all__ = [
    "COSD_COLUMNS",
    "MAX_EXPORT_ROWS",
    "active_instances",
    "cosd_csv",
    "cosd_rows",
    "cosd_statement",
    "cosd_table",
]

# Patient-level milestone column -> where the summary keeps its first date: (measure, start_at | done_at).
_MILESTONE_COLUMNS = {
    "hna_offered_date": ("hna_offered_31d", "done_at"),
    "hna_completed_date": ("hna_completed_31d", "done_at"),
    "care_plan_agreed_date": ("care_plan_agreed", "done_at"),
    "treatment_end_date": ("eot_summary_6w", "start_at"),
    "eot_summary_date": ("eot_summary_6w", "done_at"),
    "cancer_care_review_date": ("cancer_care_review_12m", "done_at"),
}
_DIAGNOSIS = ("hna_offered_31d", "start_at")  # the started event, as the first measure's start keeps it
# Item column -> the status whose first date it holds.
_ITEM_DATES = {
    "proposed_date": "proposed",
    "agreed_date": "agreed",
    "referred_date": "referred",
    "accepted_date": "accepted",
    "first_contact_date": "first_contact",
    "completed_date": "completed",
}
_ITEM_CODES = ("item_kind", "item_code", "service", "urgency", "item_status")
COSD_COLUMNS: tuple[str, ...] = (
    "patient_ref",
    "pathway_id",
    "instance_id",
    "diagnosis_date",
    *_MILESTONE_COLUMNS,
    *_ITEM_CODES,
    *_ITEM_DATES,
    "ended_date",
)
MAX_EXPORT_ROWS = 250_000  # a period's export is held in memory: narrow the period past this
_BATCH = 2000  # rows fetched from the database at a time
_FORMULA_STARTS = ("=", "+", "-", "@", "\t")  # engine.reports.tables's, but "\r", which COPY quotes
_WORK_MEM = "128MB"  # PostgreSQL's memory for each sort of the export (MAX_EXPORT_ROWS rows: about 100 MB)
_HEADER = ",".join(COSD_COLUMNS) + "\r\n"


def active_instances(query: MeasureQuery) -> Subquery:
    """The instances with any personalised care activity in ``query``'s period: diagnosed, a measure's
    milestone reached, a care plan item proposed or moved (read from the summary)."""
    r, i = ReportMeasureRow, ReportItem
    return union(
        select(r.instance_id).where(
            *_pathway(r.pathway_id, r.instance_id, query), or_(_within(r.start_at, query), _within(r.done_at, query))
        ),
        select(i.instance_id).where(
            *_pathway(i.pathway_id, i.instance_id, query), or_(*(_within(at, query) for at in _item_times()))
        ),
    ).subquery("active")


def cosd_statement(
    instance_ids: Sequence[str] | CTE, dialect: str, *, for_copy: bool = False
) -> Select[*tuple[Any, ...]]:
    """The statement that reads the export's rows of ``instance_ids`` (``dialect``: the database's; the ids,
    or a common table expression of them, column ``instance_id``):
    per instance and care plan item, the patient reference, the pathway, the milestones' first days
    (one column each, pivoted from the summary's measure rows) and the item's codes and days, every
    value already text, in the export's order -- by patient reference, instance, then the item's
    proposal. The ids travel as one parameter, however many there are.

    ``for_copy`` (PostgreSQL's ``COPY ... TO STDOUT``, which writes the CSV itself, :func:`cosd_csv`): an
    absent value is NULL rather than empty text (COPY writes NULL as nothing and an empty text as ``""``),
    a day is a ``date`` (COPY writes it as ``YYYY-MM-DD`` under ``DateStyle`` ISO, which is cheaper than
    formatting it), and one row more than :data:`MAX_EXPORT_ROWS` at most is read."""
    r, i, pi = ReportMeasureRow, ReportItem, PathwayInstance
    pivoted = [
        func.max(case((r.measure == measure, getattr(r, field))))
        for measure, field in (_DIAGNOSIS, *_MILESTONE_COLUMNS.values())
    ]
    day = _date if for_copy else _day
    cell: Callable[[Any], Any] = (lambda column: column) if for_copy else _or_empty
    milestones = (
        select(
            r.instance_id,
            func.max(r.pathway_id).label("pathway_id"),
            *(day(at, dialect).label(f"m{n}") for n, at in enumerate(pivoted)),
        )
        .where(_among(r.instance_id, instance_ids, dialect))
        .group_by(r.instance_id)
        .subquery("milestones")
    )
    columns = [
        pi.patient_ref,
        cell(milestones.c.pathway_id),
        pi.id,
        *(cell(milestones.c[f"m{n}"]) for n in range(len(pivoted))),
        *(cell(code) for code in (i.kind, i.code, i.service, i.urgency, i.status)),
        *(cell(day(at, dialect)) for at in _item_times()),
    ]
    # Python's order of strings (code points) is the bytes' order of UTF-8: the same order on both databases.
    binary = "C" if dialect == "postgresql" else "BINARY"
    by_patient = (collate(pi.patient_ref, binary), collate(pi.id, binary))
    if not for_copy:
        return (
            select(*columns)
            .where(_among(pi.id, instance_ids, dialect))
            .outerjoin(milestones, milestones.c.instance_id == pi.id)
            .outerjoin(i, i.instance_id == pi.id)
            .order_by(*by_patient, i.proposed_at, collate(i.item_id, binary))
        )
    # The same order, but the instances are numbered in it first (19,000 short rows) and the rows sorted by
    # that number: the sort of a quarter's 130,000 wide rows by two texts took a third of the statement.
    ranked = (
        select(pi.id, pi.patient_ref, func.row_number().over(order_by=by_patient).label("n"))
        .where(_among(pi.id, instance_ids, dialect))
        .subquery("ranked")
    )
    columns[0], columns[2] = ranked.c.patient_ref, ranked.c.id
    return (
        select(*columns)
        .select_from(ranked)
        .outerjoin(milestones, milestones.c.instance_id == ranked.c.id)
        .outerjoin(i, i.instance_id == ranked.c.id)
        .order_by(ranked.c.n, i.proposed_at, collate(i.item_id, binary))
        .limit(MAX_EXPORT_ROWS + 1)
    )


def _or_empty(column: Any) -> Any:
    return func.coalesce(column, "")


def _date(at: Any, dialect: str) -> Any:
    """The UTC calendar day of a time column, as a date (PostgreSQL)."""
    return cast(func.timezone("UTC", at), Date)


def cosd_table(session: Session, query: MeasureQuery) -> list[tuple[str, ...]]:
    """The export's rows for the patients with any personalised care activity in ``query``'s period
    (:func:`active_instances`), ordered by patient, each a tuple of text in :data:`COSD_COLUMNS`' order;
    read from the summary (engine.reports.summary, refreshed by the worker) in two statements whatever
    the cohort's size. Every exported instance is named to the access log.

    Raises:
        InvalidInputError: more than :data:`MAX_EXPORT_ROWS` rows (field ``to``: narrow the period).
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        _tune(session)
    ids = list(session.scalars(select(active_instances(query).c.instance_id)))
    if not ids:
        return []
    result = session.execute(cosd_statement(ids, dialect), execution_options={"yield_per": _BATCH})
    try:  # a refused export stops reading: its server-side cursor is closed here, not left to the collector
        rows: list[tuple[str, ...]] = []
        for batch in result.partitions():
            rows.extend(map(tuple, batch))
            if len(rows) > MAX_EXPORT_ROWS:
                raise _too_large()
    finally:
        result.close()
    saw(ids)
    return rows


def cosd_rows(session: Session, query: MeasureQuery) -> list[dict[str, str]]:
    """:func:`cosd_table`'s rows as mappings of column name to text (the API's JSON).

    Raises:
        InvalidInputError: more than :data:`MAX_EXPORT_ROWS` rows (field ``to``: narrow the period).
    """
    return [dict(zip(COSD_COLUMNS, row, strict=True)) for row in cosd_table(session, query)]


def cosd_csv(session: Session, query: MeasureQuery) -> str:
    """The export as CSV text (RFC 4180: a header row, CRLF line ends; formula-like cells as text): what
    ``csv_of_texts(COSD_COLUMNS, cosd_table(...))`` writes, byte for byte.

    On PostgreSQL the database writes the rows itself (``COPY (...) TO STDOUT WITH (FORMAT csv)``): a
    quarter's 130,000 rows are 2.9 million cells, and receiving each as a Python string took about a
    second of the export's CPU. Lines are then given CRLF ends; should any cell have been quoted (a comma,
    a quote or a line break in it), the rows are read back and written by Python's writer instead, so
    that the file is the same whichever database wrote it.

    Raises:
        InvalidInputError: more than :data:`MAX_EXPORT_ROWS` rows (field ``to``: narrow the period).
    """
    dialect = session.get_bind().dialect.name
    if dialect != "postgresql":
        return csv_of_texts(COSD_COLUMNS, cosd_table(session, query))
    _tune(session)
    # One statement: the instances with activity in the period are a common table expression of it, and
    # the access log learns which were exported from the rows (the instance is their third column).
    active = select(active_instances(query).c.instance_id).cte("active")
    compiled = cosd_statement(active, dialect, for_copy=True).compile(
        dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True}
    )
    driver = session.connection().connection.driver_connection
    assert driver is not None  # a live connection of the session's transaction
    chunks: list[bytes] = []
    with driver.cursor() as cursor:
        with cursor.copy(f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)", compiled.params) as copy:
            chunks.extend(bytes(block) for block in copy)
        copied = cursor.rowcount
    if copied > MAX_EXPORT_ROWS:
        raise _too_large()
    body = b"".join(chunks).decode()
    if '"' not in body and not _formula_cell(body):
        if noting():
            saw({line.split(",", 3)[2] for line in body.splitlines()})
        return _HEADER + body.replace("\n", "\r\n")
    # A quoted cell (COPY quotes one with a comma, a quote or a line break) or one that starts like a formula
    # (the days never do; a patient reference might): the rows are read back and written by Python's writer.
    rows = list(csv.reader(io.StringIO(body, newline="")))
    saw({row[2] for row in rows})
    return csv_of_texts(COSD_COLUMNS, rows)


def _formula_cell(body: str) -> bool:
    """Whether a cell of COPY's unquoted CSV starts like a formula (as engine.reports.tables escapes them;
    COPY always quotes a cell with a carriage return). A character no cell holds is ruled out by one scan
    at memory speed; only one that occurs ("-", in every date) is looked for after a separator. One
    regular expression over a quarter's 28 MB took half a second."""
    return body.startswith(_FORMULA_STARTS) or any(
        start in body and ("," + start in body or "\n" + start in body) for start in _FORMULA_STARTS
    )


def _tune(session: Session) -> None:
    """PostgreSQL: the export's transaction without JIT, and with the memory to sort its rows."""
    # The second statement's cost estimate passes jit_above_cost, and compiling it took 7 of the 8 seconds
    # it ran (100,000 instances): the plan reads the summary once, which JIT does not speed up. The rows
    # are sorted by patient: a quarter's 130,000 rows take about 50 MB, which at the default work_mem
    # (4 MB) spilled to disk and took 0.7 of the statement's 1.9 s. This transaction's sorts and hashes may
    # use up to _WORK_MEM each; the export is bounded by MAX_EXPORT_ROWS.
    # On a small server a parallel plan only repeats the milestones' aggregate in every worker (2.5 s
    # against 1.1 s on 2 cores). DateStyle ISO: COPY writes the export's dates as YYYY-MM-DD.
    session.execute(
        text(
            "SELECT set_config('jit', 'off', true), set_config('work_mem', :memory, true), "
            "set_config('max_parallel_workers_per_gather', '0', true), "
            "set_config('datestyle', 'ISO, YMD', true)"
        ),
        {"memory": _WORK_MEM},
    )


def _too_large() -> InvalidInputError:
    return InvalidInputError(
        "the export is too large", [Problem(f"more than {MAX_EXPORT_ROWS} rows: ask for a shorter period", field="to")]
    )


def _item_times() -> list[Any]:
    return [getattr(ReportItem, f"{status}_at") for status in (*_ITEM_DATES.values(), "closed")]


def _among(column: Any, instance_ids: Sequence[str] | CTE, dialect: str) -> Any:
    """``column`` is one of ``instance_ids``, given as one parameter (an IN list of 20,000 ids would be
    20,000 parameters: PostgreSQL takes at most 65,535, and plans each), or read from a common table
    expression of them."""
    if isinstance(instance_ids, CTE):
        return column.in_(select(instance_ids.c.instance_id))
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
