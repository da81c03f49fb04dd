"""The summary the reports read at scale: per instance, what each measure needs, derived from its
facts (engine.reports.facts) by the same definitions (engine.reports.measures), kept in four tables
(``report_instances``, ``report_measure_rows``, ``report_items``, ``report_warning_signs``) that SQL
aggregates in milliseconds where reading every event took a minute (docs/measures.md, "At scale").

:func:`refresh_summary` brings the summary up to date: it re-derives the instances whose event trail
has grown since (``pathway_instances.event_seq`` differs from ``report_instances.event_seq``), a batch
per unit of work. The worker runs it between timer batches; ``carepath report`` runs it before
reading. A report says how many instances it has not caught up with (``stale_instances``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, case, delete, func, insert, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from engine.db.models import PathwayInstance, ReportInstance, ReportItem, ReportMeasureRow, ReportWarningSign
from engine.db.session import unit_of_work
from engine.reports.facts import CLOSING_STATUSES, Cohort, load_cohort
from engine.reports.measures import MEASURES, MeasureQuery, referral_deadline, suppress
from engine.reports.trends import URGENCY_ORDER, Trend, months, weeks
from engine.settings import ReferralTimeframes

__all__ = ["read_measures", "read_trends", "refresh_summary", "stale_instances"]

_ANSWERED = ("first_contact", "completed", *CLOSING_STATUSES)
_COLOURS = ("red", "amber", "green", "not triaged")
_TABLES = [cast(Table, model.__table__) for model in (ReportMeasureRow, ReportItem, ReportWarningSign, ReportInstance)]


# --- refreshing ---------------------------------------------------------------------------------------------


def _is_stale(deadlines: str | None) -> ColumnElement[bool]:
    """An instance the summary has not caught up with: new, its trail grown since, or (``deadlines``: the
    fingerprint of the timeframes in force) derived with other referral timeframes."""
    stale = [ReportInstance.instance_id.is_(None), ReportInstance.event_seq != PathwayInstance.event_seq]
    if deadlines is not None:
        stale.append(ReportInstance.deadlines.is_distinct_from(deadlines))
    return or_(*stale)


def _stale(session: Session, limit: int, deadlines: str) -> list[tuple[str, str, int]]:
    return [
        (row[0], row[1], row[2])
        for row in session.execute(
            select(PathwayInstance.id, PathwayInstance.pathway_id, PathwayInstance.event_seq)
            .outerjoin(ReportInstance, ReportInstance.instance_id == PathwayInstance.id)
            .where(_is_stale(deadlines))
            .limit(limit)
        )
    ]


def stale_instances(
    session: Session, where: Sequence[ColumnElement[bool]] = (), timeframes: ReferralTimeframes | None = None
) -> int:
    """How many instances changed since the summary last caught up with them (with ``timeframes``, the
    deployment's: also those derived with other referral timeframes); ``where``: conditions on
    ``pathway_instances`` keeping whose they are (a report's :meth:`MeasureQuery.placed`: its organisation
    and team only, since the count is itself a measure of their activity)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(PathwayInstance)
            .outerjoin(ReportInstance, ReportInstance.instance_id == PathwayInstance.id)
            .where(_is_stale(None if timeframes is None else timeframes.fingerprint()), *where)
        )
        or 0
    )


def refresh_summary(
    sessions: sessionmaker[Session],
    now: datetime,
    timeframes: ReferralTimeframes,
    *,
    batch: int = 1000,
    limit: int | None = None,
) -> int:
    """Re-derive the summary of every instance whose trail grew since, or that was derived with other
    referral ``timeframes`` than the deployment's (at most ``limit``), ``batch`` instances per unit of
    work. Returns how many were refreshed."""
    done = 0
    deadlines = timeframes.fingerprint()
    while limit is None or done < limit:
        with unit_of_work(sessions) as session:
            stale = _stale(session, batch if limit is None else min(batch, limit - done), deadlines)
            if not stale:
                break
            _rewrite(session, stale, now, timeframes)
        done += len(stale)
    return done


def _week(at: datetime | None) -> str | None:
    return None if at is None else (at - timedelta(days=at.weekday())).date().isoformat()


def _days(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds() / 86400


def _rewrite(
    session: Session, stale: list[tuple[str, str, int]], now: datetime, timeframes: ReferralTimeframes
) -> None:
    ids = [instance_id for instance_id, _, _ in stale]
    cohort = load_cohort(session, None, None, ids)
    for table in _TABLES:
        session.execute(delete(table).where(table.c.instance_id.in_(ids)))
    rows = _rows(cohort, timeframes)
    deadlines = timeframes.fingerprint()
    rows["report_instances"] = [
        {"instance_id": i, "pathway_id": p, "event_seq": seq, "refreshed_at": now, "deadlines": deadlines}
        for i, p, seq in stale
    ]
    copy = session.get_bind().dialect.name == "postgresql"
    for table in _TABLES:
        if not rows[table.name]:
            continue
        if copy:  # COPY: a twentieth of the time of an executemany of the same rows
            _copy(session, table, rows[table.name])
        else:
            session.execute(insert(table), rows[table.name])


def _copy(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL's COPY of ``rows`` into ``table`` on the session's connection (its transaction). The
    values are ids, codes, numbers and aware datetimes, which the driver writes as the ORM would."""
    names = [column.name for column in table.columns]
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as pipe:
        for row in rows:
            pipe.write_row(tuple(row.get(name) for name in names))


def _rows(cohort: Cohort, timeframes: ReferralTimeframes) -> dict[str, list[dict[str, Any]]]:
    """The summary rows of the cohort's instances, by table."""
    rows: dict[str, list[dict[str, Any]]] = {"report_measure_rows": [], "report_items": [], "report_warning_signs": []}
    pathway_of = {facts.instance_id: facts.pathway_id for facts in cohort.instances}
    for facts in cohort.instances:
        for measure in MEASURES:
            start = measure.start(facts)
            if start is None:
                continue
            rows["report_measure_rows"].append(
                {
                    "instance_id": facts.instance_id,
                    "measure": measure.id,
                    "pathway_id": facts.pathway_id,
                    "start_at": start,
                    "start_month": start.strftime("%Y-%m"),
                    "deadline_at": measure.window(start) if measure.window else None,
                    "done_at": facts.first(measure.outcome, after=start),
                }
            )
        triaged = facts.milestones.get("triaged", [])
        for index, reported in enumerate(facts.warning_reports):
            triage = triaged[index] if index < len(triaged) else None
            rows["report_warning_signs"].append(
                {
                    "instance_id": facts.instance_id,
                    "n": index + 1,
                    "pathway_id": facts.pathway_id,
                    "reported_at": reported,
                    "triaged_at": triage,
                    "colour": facts.ratings[index][1] if index < len(facts.ratings) else "not triaged",
                    "hours_to_triage": None if triage is None else (triage - reported).total_seconds() / 3600,
                }
            )
    for item in cohort.items:
        moved = item.moved
        referred = moved.get("referred") if item.kind == "referral" else None
        answered = min((at for status, at in moved.items() if status in _ANSWERED), default=None)
        if answered is not None and referred is not None:
            answered = max(answered, referred)  # an answer recorded before the referral: answered on referral
        rows["report_items"].append(
            {
                "item_id": item.item_id,
                "instance_id": item.instance_id,
                "pathway_id": pathway_of[item.instance_id],
                "kind": item.kind,
                "code": item.code,
                "service": item.service,
                "urgency": item.urgency,
                "status": item.status,
                "proposed_at": moved["proposed"],
                "agreed_at": moved.get("agreed"),
                "referred_at": referred,
                "referred_week": _week(referred),
                "accepted_at": moved.get("accepted"),
                "first_contact_at": moved.get("first_contact"),
                "completed_at": moved.get("completed"),
                "answered_at": answered,
                "answered_week": _week(answered),
                "due_at": None if referred is None else referral_deadline(referred, item.urgency or "", timeframes),
                "closed_at": item.closed_at,
                "days_to_acceptance": _days(referred, moved.get("accepted")),
                "days_to_first_contact": _days(referred, moved.get("first_contact")),
            }
        )
    return rows


# --- reading ------------------------------------------------------------------------------------------------


def _in(column: Any, query: MeasureQuery, pathway: Any) -> list[ColumnElement[bool]]:
    found = [column >= query.since, column < query.until, *query.placed(column.class_.instance_id)]
    if query.pathway_id is not None:
        found.append(pathway == query.pathway_id)
    return found


def _count(condition: ColumnElement[bool]) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _medians(
    session: Session, value: InstrumentedAttribute[Any], groups: Sequence[Any], where: Iterable[ColumnElement[bool]]
) -> dict[tuple[Any, ...], float | None]:
    """The median of ``value`` per group (rounded to 2 places): in the database on PostgreSQL, in
    Python from the values on SQLite (which has no median; a SQLite deployment is a small one)."""
    where = [*where, value.is_not(None)]
    if session.get_bind().dialect.name == "postgresql":
        median = func.percentile_cont(0.5).within_group(value)
        return {
            tuple(row[:-1]): round(float(row[-1]), 2)
            for row in session.execute(select(*groups, median).where(*where).group_by(*groups))
        }
    values: dict[tuple[Any, ...], list[float]] = {}
    for row in session.execute(select(*groups, value).where(*where)):
        values.setdefault(tuple(row[:-1]), []).append(row[-1])
    return {key: round(statistics.median(found), 2) for key, found in values.items()}


def _windowed(session: Session, query: MeasureQuery, as_of: datetime, by_month: bool) -> dict[tuple[str, ...], Any]:
    r = ReportMeasureRow
    met = and_(r.done_at.is_not(None), or_(r.deadline_at.is_(None), r.done_at <= r.deadline_at))
    missed = and_(
        r.deadline_at.is_not(None), r.deadline_at < as_of, or_(r.done_at.is_(None), r.done_at > r.deadline_at)
    )
    groups = [r.measure, r.start_month] if by_month else [r.measure]
    return {
        tuple(row[: len(groups)]): row[len(groups) :]
        for row in session.execute(
            select(*groups, _count(met), _count(missed), func.count())
            .where(*_in(r.start_at, query, r.pathway_id))
            .group_by(*groups)
        )
    }


def _totals(monthly: dict[tuple[str, ...], Any]) -> dict[tuple[str, ...], tuple[int, int, int]]:
    """Per measure, the sums of its months' (met, missed, total): the months partition the period."""
    totals: dict[tuple[str, ...], tuple[int, int, int]] = {}
    for (measure, _month), found in monthly.items():
        met, missed, total = totals.get((measure,), (0, 0, 0))
        totals[(measure,)] = (met + int(found[0] or 0), missed + int(found[1] or 0), total + int(found[2] or 0))
    return totals


def _measure_row(measure: Any, found: Any) -> dict[str, Any]:
    met, missed, total = (int(v or 0) for v in (found or (0, 0, 0)))
    return {
        "id": measure.id,
        "title": measure.title,
        "numerator": met,
        "denominator": met + missed,
        "pending": total - met - missed,
        "rate": round(met / (met + missed), 4) if met + missed else None,
    }


def read_measures(
    session: Session,
    query: MeasureQuery,
    as_of: datetime,
    monthly: dict[tuple[str, ...], Any] | None = None,
    timeframes: ReferralTimeframes | None = None,
) -> dict[str, Any]:
    """The report of :func:`engine.reports.measures.compute_measures`, aggregated from the summary
    (unsuppressed: pass it to :func:`~engine.reports.measures.suppress`). ``monthly``: the windowed
    measures' counts per month that :func:`read_trends` read, added up here instead of read again.
    ``timeframes``: the deployment's, so that instances derived with others count as not caught up."""
    windowed = _windowed(session, query, as_of, by_month=False) if monthly is None else _totals(monthly)
    return {
        "from": query.since.isoformat(),
        "to": query.until.isoformat(),
        "pathway": query.pathway_id,
        "team": query.team,
        "as_of": as_of.isoformat(),
        "measures": [_measure_row(m, windowed.get((m.id,))) for m in MEASURES],
        "referrals": _referrals(session, query, as_of),
        "declined": _declined(session, query),
        "warning_signs": _warning_signs(session, query),
        "stale_instances": stale_instances(session, query.placed(PathwayInstance.id), timeframes),
    }


def _referrals(session: Session, query: MeasureQuery, as_of: datetime) -> list[dict[str, Any]]:
    i = ReportItem
    where = [i.kind == "referral", *_in(i.referred_at, query, i.pathway_id)]
    overdue = and_(
        i.due_at.is_not(None),
        or_(
            and_(i.answered_at.is_not(None), i.answered_at > i.due_at), and_(i.answered_at.is_(None), i.due_at < as_of)
        ),
    )
    groups = [i.service, i.urgency]
    columns: list[Any] = [
        *groups,
        func.count(),
        func.count(i.accepted_at),
        func.count(i.first_contact_at),
        _count(overdue),
    ]
    in_database = session.get_bind().dialect.name == "postgresql"
    if in_database:  # the medians in the same scan as the counts
        columns += [
            func.percentile_cont(0.5).within_group(i.days_to_acceptance),
            func.percentile_cont(0.5).within_group(i.days_to_first_contact),
        ]
    else:
        acceptance = _medians(session, i.days_to_acceptance, groups, where)
        contact = _medians(session, i.days_to_first_contact, groups, where)
    rows = []
    for row in session.execute(select(*columns).where(*where).group_by(*groups).order_by(*groups)):
        service, urgency, referred, accepted, contacted, late = row[:6]
        if in_database:
            to_acceptance, to_contact = (None if v is None else round(float(v), 2) for v in row[6:8])
        else:
            to_acceptance, to_contact = acceptance.get((service, urgency)), contact.get((service, urgency))
        rows.append(
            {
                "service": service,
                "urgency": urgency,
                "referred": referred,
                "accepted": accepted,
                "median_days_to_acceptance": to_acceptance,
                "first_contact": contacted,
                "median_days_to_first_contact": to_contact,
                "overdue": int(late),
                "overdue_share": round(int(late) / referred, 4) if referred else None,
            }
        )
    return rows


def _declined(session: Session, query: MeasureQuery) -> list[dict[str, Any]]:
    i = ReportItem
    return [
        {"kind": kind, "reason": reason, "count": count}
        for kind, reason, count in session.execute(
            select(i.kind, i.status, func.count())
            .where(*_in(i.closed_at, query, i.pathway_id))
            .group_by(i.kind, i.status)
            .order_by(i.kind, i.status)
        )
    ]


def _warning_signs(session: Session, query: MeasureQuery) -> list[dict[str, Any]]:
    w = ReportWarningSign
    where = _in(w.reported_at, query, w.pathway_id)
    hours = _medians(session, w.hours_to_triage, [w.colour], where)
    found = {
        colour: (reports, triaged)
        for colour, reports, triaged in session.execute(
            select(w.colour, func.count(), func.count(w.hours_to_triage)).where(*where).group_by(w.colour)
        )
    }
    return [
        {
            "colour": colour,
            "reports": found[colour][0],
            "triaged": found[colour][1],
            "median_hours_to_triage": hours.get((colour,)),
        }
        for colour in sorted(found, key=lambda c: _COLOURS.index(c) if c in _COLOURS else len(_COLOURS))
    ]


def read_trends(
    session: Session, query: MeasureQuery, as_of: datetime, min_count: int
) -> tuple[Trend, Trend, Trend, dict[tuple[str, ...], Any]]:
    """The measures per month, referrals per week by urgency and the open-referral backlog per week,
    as :mod:`engine.reports.trends` defines them, aggregated from the summary and suppressed; and the
    windowed measures' unsuppressed counts per month, which :func:`read_measures` adds up."""
    month_spans = months(query)
    labels = [since.strftime("%Y-%m") for since, _ in month_spans]
    windowed = _windowed(session, query, as_of, by_month=True)
    series: dict[str, list[Any]] = {}
    for measure in MEASURES:
        rows = [_measure_row(measure, windowed.get((measure.id, label))) for label in labels]
        report = suppress({"measures": rows, "referrals": [], "declined": [], "warning_signs": []}, min_count)
        series[measure.title] = [row["rate"] for row in report["measures"]]
    mondays = weeks(query)
    week_labels = [monday.date().isoformat() for monday in mondays]
    i = ReportItem
    counts: dict[str, list[int]] = {}
    opened: dict[str, int] = {}  # referrals made each week before the period's end, for the backlog
    within = i.referred_at >= query.since
    for week, urgency, in_period, count in session.execute(  # one scan for both
        select(i.referred_week, i.urgency, within, func.count())
        .where(*_referrals_before(query))
        .group_by(i.referred_week, i.urgency, within)
    ):
        opened[str(week)] = opened.get(str(week), 0) + count
        if in_period:
            counts.setdefault(urgency or "unknown", [0] * len(mondays))[week_labels.index(str(week))] += count
    order = sorted(counts, key=lambda u: (URGENCY_ORDER.index(u) if u in URGENCY_ORDER else len(URGENCY_ORDER), u))

    def small(value: int) -> int | None:
        return None if 0 < value < min_count else value

    weekly = Trend(week_labels, {u: [small(v) for v in counts[u]] for u in order})
    return Trend(labels, series), weekly, _backlog(session, query, as_of, mondays, opened, small), windowed


def _referrals_before(query: MeasureQuery) -> list[Any]:
    """The referrals of the query's pathway and place referred before the period's end (any time)."""
    i = ReportItem
    scope = [
        i.kind == "referral",
        i.referred_at.is_not(None),
        i.referred_at < query.until,
        *query.placed(i.instance_id),
    ]
    if query.pathway_id is not None:
        scope.append(i.pathway_id == query.pathway_id)
    return scope


def _backlog(
    session: Session, query: MeasureQuery, as_of: datetime, mondays: list[datetime], opened: dict[str, int], small: Any
) -> Trend:
    """Open at a week's end = referred before it (``opened``: per week) - answered before it (an answer
    never precedes its referral in the summary), counted per week over all time before the period's end."""
    i = ReportItem
    answered: dict[str, int] = {
        str(week): n
        for week, n in session.execute(
            select(i.answered_week, func.count())
            .where(*_referrals_before(query), i.answered_at < query.until)
            .group_by(i.answered_week)
        )
    }
    labels, values = [], []
    for monday in mondays:
        end = min(monday + timedelta(days=7), query.until)
        if end > as_of:
            break
        label = end.date().isoformat() if end < query.until else "9999-12-31"  # the last: all of them
        open_now = sum(n for week, n in opened.items() if week < label) - sum(
            n for week, n in answered.items() if week < label
        )
        labels.append(monday.date().isoformat())
        values.append(small(open_now))
    return Trend(labels, {"open referrals": values})
