"""The measures of docs/measures.md on a synthetic cohort whose answers are worked out by hand
(tests/report_cohort.py draws its timeline), and the suppression of small counts."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from report_cohort import AS_OF, SINCE, UNTIL, P, at, cohort, write_cohort
from sqlalchemy import event, select, update

from engine import CarePath, Settings
from engine.audit import append_event
from engine.db.models import PathwayInstance, ReportMeasureRow
from engine.db.session import read_only, unit_of_work
from engine.errors import InvalidInputError
from engine.instances.store import load_instance, save_instance
from engine.reports import (
    COSD_COLUMNS,
    MeasureQuery,
    compute_measures,
    cosd_csv,
    cosd_rows,
    cosd_table,
    csv_of_texts,
    csv_text,
    load_cohort,
    measure_table,
    measures_report,
    referral_deadline,
    refresh_summary,
    stale_instances,
    suppress,
)
from engine.reports.summary import read_measures
from engine.settings import ReferralTimeframes


def _report(carepath: CarePath, pathway: str | None = P) -> dict[str, Any]:
    with unit_of_work(carepath.sessions) as session:
        write_cohort(session)
    query = MeasureQuery(SINCE, UNTIL, pathway)
    with read_only(carepath.sessions) as session:
        return compute_measures(
            load_cohort(session, pathway, UNTIL), query, AS_OF, carepath.settings.referral_timeframes
        )


def _measure(report: dict[str, Any], measure_id: str) -> tuple[int, int, int]:
    [row] = [m for m in report["measures"] if m["id"] == measure_id]
    return row["numerator"], row["denominator"], row["pending"]


def test_each_measure_on_the_synthetic_cohort(carepath: CarePath) -> None:
    report = _report(carepath)
    # Offered within 31 days: A (10 days) and C (5) of A, B (40: missed), C, E (none, window closed).
    assert _measure(report, "hna_offered_31d") == (2, 4, 0)
    # Completed within 31 days: A (20 days); B took 45, C declined, E had none.
    assert _measure(report, "hna_completed_31d") == (1, 4, 0)
    # First HNA completed in the period: A, B, F; A and F agreed a plan, B has not yet (no window).
    assert _measure(report, "care_plan_agreed") == (2, 2, 1)
    # Treatment ended in the period: A (summary 30 days later), B (50: missed), F (none after 42 days).
    assert _measure(report, "eot_summary_6w") == (1, 3, 0)
    # Reviewed within 12 months: A (first review), C (second); B and E's 12 months are not over.
    assert _measure(report, "cancer_care_review_12m") == (2, 2, 2)
    assert report["measures"][0]["rate"] == 0.5


def test_the_pathway_filter_and_every_pathway(carepath: CarePath) -> None:
    everything = _report(carepath, pathway=None)
    assert _measure(everything, "hna_offered_31d") == (3, 5, 0)  # G (lung) was offered one on day 1


def test_referrals_by_service_and_urgency(carepath: CarePath) -> None:
    rows = {(r["service"], r["urgency"]): r for r in _report(carepath)["referrals"]}
    assert sorted(rows) == [
        ("acute_oncology", "emergency"),
        ("dietitian", "routine"),
        ("physio", "soon"),
        ("psychology", "urgent"),
    ]
    psychology = rows[("psychology", "urgent")]
    # r1: accepted after 3 days, first contact after 3 days 23 hours; r2: 1 day, 5 days; r3 never.
    assert psychology == {
        "service": "psychology",
        "urgency": "urgent",
        "referred": 3,
        "accepted": 2,
        "median_days_to_acceptance": 2.0,
        "first_contact": 2,
        "median_days_to_first_contact": round((3 + 23 / 24 + 5) / 2, 2),
        "overdue": 2,
        "overdue_share": round(2 / 3, 4),
    }
    # An emergency created referred (no referred event) is timed from its creation: seen the same day.
    assert rows[("acute_oncology", "emergency")]["overdue"] == 0
    assert rows[("acute_oncology", "emergency")]["median_days_to_first_contact"] == 0.5
    assert rows[("dietitian", "routine")]["overdue"] == 0
    assert rows[("physio", "soon")]["overdue"] == 0  # answered (declined by the service) in time


def test_declined_items_by_reason_within_the_period(carepath: CarePath) -> None:
    # C's declined intervention last changed in May, after the period.
    assert _report(carepath)["declined"] == [
        {"kind": "intervention", "reason": "declined", "count": 1},
        {"kind": "referral", "reason": "service_declined", "count": 1},
    ]


def test_warning_signs_by_colour_and_time_to_triage(carepath: CarePath) -> None:
    # F's report (December) is before the period.
    assert _report(carepath)["warning_signs"] == [
        {"colour": "red", "reports": 1, "triaged": 1, "median_hours_to_triage": 0.5},
        {"colour": "amber", "reports": 1, "triaged": 1, "median_hours_to_triage": 2.0},
        {"colour": "green", "reports": 1, "triaged": 1, "median_hours_to_triage": 4.0},
        {"colour": "not triaged", "reports": 1, "triaged": 0, "median_hours_to_triage": None},
    ]


def test_the_service_suppresses_the_small_counts_of_the_cohort(carepath: CarePath) -> None:
    with unit_of_work(carepath.sessions) as session:
        write_cohort(session)
    refresh_summary(carepath.sessions, AS_OF, carepath.settings.referral_timeframes)
    with read_only(carepath.sessions) as session:
        report = measures_report(session, MeasureQuery(SINCE, UNTIL, P), AS_OF, 5, ReferralTimeframes())
    assert report["suppression_threshold"] == 5
    offered = report["measures"][0]
    assert (offered["numerator"], offered["denominator"], offered["rate"]) == (None, None, None)
    assert offered["pending"] == 0  # zero singles no one out
    assert all(row["count"] is None for row in report["declined"])


def test_a_team_or_an_organisation_counts_only_its_own_patients(carepath: CarePath) -> None:
    """The team filter and the caller's organisation (engine.care_teams) select whose patients are counted:
    the teams' reports add up to the organisation's, and another organisation sees none of them."""
    patients = cohort()
    for letter in "EFG":
        patients[letter].care_team = "lung"
    with unit_of_work(carepath.sessions) as session:
        write_cohort(session, patients)
    refresh_summary(carepath.sessions, AS_OF, carepath.settings.referral_timeframes)

    def counts(team: str | None, organisation: str | None) -> list[tuple[int, int]]:
        with read_only(carepath.sessions) as session:
            found = read_measures(session, MeasureQuery(SINCE, UNTIL, None, team, organisation), AS_OF)
        return [(row["numerator"] or 0, row["denominator"] or 0) for row in found["measures"]]

    everyone, breast, lung = counts(None, None), counts("breast", "rx1"), counts("lung", "rx1")
    assert any(d for _, d in breast) and any(d for _, d in lung)
    assert [(bn + ln, bd + ld) for (bn, bd), (ln, ld) in zip(breast, lung, strict=True)] == everyone
    assert counts(None, "rx1") == everyone
    assert all(d == 0 for _, d in counts(None, "rx2"))  # another organisation's manager counts nobody here
    assert all(d == 0 for _, d in counts("lung", "rx2"))


def test_instances_not_caught_up_with_are_counted_for_the_reports_organisation_and_team(carepath: CarePath) -> None:
    """``stale_instances`` is activity too: a report counts its own organisation's (and team's) only."""
    patients = cohort()
    for letter in "EF":
        patients[letter].care_team = "lung"
    patients["G"].organisation = "rx2"
    with unit_of_work(carepath.sessions) as session:
        write_cohort(session, patients)

    def stale(team: str | None, organisation: str | None) -> int:
        with read_only(carepath.sessions) as session:
            found = read_measures(session, MeasureQuery(SINCE, UNTIL, None, team, organisation), AS_OF)
        return int(found["stale_instances"])

    assert stale(None, None) == 6  # a token of every organisation
    assert (stale(None, "rx1"), stale("breast", "rx1"), stale("lung", "rx1")) == (5, 3, 2)
    assert (stale(None, "rx2"), stale("lung", "rx2"), stale(None, "rx3")) == (1, 0, 0)
    refresh_summary(carepath.sessions, AS_OF, carepath.settings.referral_timeframes)
    assert stale(None, "rx1") == stale(None, "rx2") == 0


@pytest.mark.parametrize("pathway", [P, None])
def test_the_summary_gives_the_answers_of_the_definitions(carepath: CarePath, pathway: str | None) -> None:
    """What the reports read (the summary, aggregated in SQL) equals the measures computed from the
    facts themselves, section by section, on the synthetic cohort."""
    expected = _report(carepath, pathway)
    timeframes = carepath.settings.referral_timeframes
    assert refresh_summary(carepath.sessions, AS_OF, timeframes, batch=2) == 6  # every instance, two at a time
    with read_only(carepath.sessions) as session:
        found = read_measures(session, MeasureQuery(SINCE, UNTIL, pathway), AS_OF)
    assert found.pop("stale_instances") == 0
    assert found == expected


def test_the_summary_catches_up_with_the_instances_whose_trail_grew(carepath: CarePath) -> None:
    with unit_of_work(carepath.sessions) as session:
        ids = write_cohort(session)
    with read_only(carepath.sessions) as session:
        assert stale_instances(session) == 6
    timeframes = carepath.settings.referral_timeframes
    refresh_summary(carepath.sessions, AS_OF, timeframes)
    assert refresh_summary(carepath.sessions, AS_OF, timeframes) == 0  # nothing changed since
    with unit_of_work(carepath.sessions) as session:  # E is offered an HNA (late): its trail grows
        record = load_instance(session, ids["E"])
        append_event(
            session,
            record,
            "task_completed",
            at=at(4, 30),
            actor="system:test",
            pathway_version=record.pathway_version,
            element="offer_hna",
            payload={},
        )
        save_instance(session, record)
    with read_only(carepath.sessions) as session:
        assert stale_instances(session) == 1
        assert _offered(session) == (2, 4)
    assert refresh_summary(carepath.sessions, AS_OF, carepath.settings.referral_timeframes) == 1
    with read_only(carepath.sessions) as session:
        assert _offered(session) == (2, 4)  # E was offered one, but after 41 days: still missed
        rows = session.scalars(select(ReportMeasureRow).where(ReportMeasureRow.instance_id == ids["E"])).all()
    assert {r.measure: r.done_at for r in rows}["hna_offered_31d"] == at(4, 30)


def _offered(session: Any) -> tuple[int, int]:
    row = read_measures(session, MeasureQuery(SINCE, UNTIL, P), AS_OF)["measures"][0]
    return row["numerator"], row["denominator"]


@pytest.mark.parametrize(
    "urgency,referred,due",
    [
        ("emergency", datetime(2026, 2, 4, 23, 0, tzinfo=UTC), datetime(2026, 2, 5, tzinfo=UTC)),
        ("urgent", datetime(2026, 1, 30, 10, tzinfo=UTC), datetime(2026, 2, 4, tzinfo=UTC)),  # Fri -> end of Tue
        ("urgent", datetime(2026, 1, 31, 10, tzinfo=UTC), datetime(2026, 2, 4, tzinfo=UTC)),  # Sat -> end of Tue
        ("soon", datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 16, tzinfo=UTC)),
        ("routine", datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC)),
        ("unknown", datetime(2026, 2, 1, tzinfo=UTC), None),
    ],
)
def test_referral_timeframes_by_urgency(urgency: str, referred: datetime, due: datetime | None) -> None:
    """The default timeframes: a referral is due by the end of the last day of its urgency's timeframe."""
    assert referral_deadline(referred, urgency, ReferralTimeframes()) == due


def test_the_reports_hold_referrals_to_the_deadlines_escalation_uses(carepath: CarePath) -> None:
    """A deployment's timeframes, time zone and holidays (CAREPATH_REFERRAL_TIMEFRAMES and the rest) set
    the reports' deadlines as they set escalation's; the summary is derived again when they change."""
    referred = datetime(2026, 1, 30, 10, tzinfo=UTC)  # r1 of the cohort: urgent, a Friday
    holiday = ReferralTimeframes(urgent="1wd", time_zone="Europe/Stockholm", holidays=frozenset({date(2026, 2, 2)}))
    assert referral_deadline(referred, "urgent", holiday) == datetime(2026, 2, 3, 23, tzinfo=UTC)  # end of Tue, CET
    assert referral_deadline(referred, "urgent", holiday) == holiday.due(referred, "urgent")

    with unit_of_work(carepath.sessions) as session:
        write_cohort(session)

    def overdue(timeframes: ReferralTimeframes) -> tuple[int, int]:
        with read_only(carepath.sessions) as session:
            found = read_measures(session, MeasureQuery(SINCE, UNTIL, P), AS_OF, timeframes=timeframes)
        rows = {(r["service"], r["urgency"]): r["overdue"] for r in found["referrals"]}
        return rows[("psychology", "urgent")], int(found["stale_instances"])

    defaults = ReferralTimeframes()
    refresh_summary(carepath.sessions, AS_OF, defaults)
    assert overdue(defaults) == (2, 0)
    # Five working days for urgent referrals: r1 (accepted on the Monday) and r2 were in time, r3 never
    # answered is still overdue. Every instance is not caught up with until the summary is derived again.
    slower = ReferralTimeframes(urgent="5wd")
    assert overdue(slower) == (2, 6)
    assert refresh_summary(carepath.sessions, AS_OF, slower) == 6
    assert overdue(slower) == (1, 0)
    assert refresh_summary(carepath.sessions, AS_OF, slower) == 0


def test_suppression_blanks_small_counts_and_what_gives_them_away() -> None:
    def row(**values: Any) -> dict[str, Any]:
        return {"measures": [{"id": "m", **values}], "referrals": [], "declined": [], "warning_signs": []}

    shown = suppress(row(numerator=20, denominator=40, pending=0, rate=0.5), 5)["measures"][0]
    assert shown == {"id": "m", "numerator": 20, "denominator": 40, "pending": 0, "rate": 0.5, "suppressed": []}
    small = suppress(row(numerator=3, denominator=40, pending=0, rate=0.075), 5)["measures"][0]
    assert (small["numerator"], small["denominator"], small["rate"]) == (None, 40, None)
    # 38 of 40: the two who did not meet it could be singled out from the total.
    complement = suppress(row(numerator=38, denominator=40, pending=7, rate=0.95), 5)["measures"][0]
    assert (complement["numerator"], complement["rate"], complement["suppressed"]) == (
        None,
        None,
        ["numerator", "rate"],
    )
    at_threshold = suppress(row(numerator=5, denominator=10, pending=4, rate=0.5), 5)["measures"][0]
    assert (at_threshold["numerator"], at_threshold["pending"]) == (5, None)
    referral = {
        "service": "s",
        "urgency": "u",
        "referred": 12,
        "accepted": 10,
        "median_days_to_acceptance": 2.0,
        "first_contact": 6,
        "median_days_to_first_contact": 3.0,
        "overdue": 2,
        "overdue_share": 0.1667,
    }
    out = suppress({"measures": [], "referrals": [referral], "declined": [], "warning_signs": []}, 5)["referrals"][0]
    assert out["suppressed"] == ["accepted", "median_days_to_acceptance", "overdue", "overdue_share"]
    assert (out["first_contact"], out["median_days_to_first_contact"], out["referred"]) == (6, 3.0, 12)


@pytest.mark.parametrize(
    "since,until,pathway,team,field",
    [
        (SINCE, SINCE, None, None, "to"),
        (UNTIL, SINCE, None, None, "to"),
        (SINCE, SINCE + timedelta(days=5 * 366 + 1), None, None, "to"),
        (SINCE, UNTIL, "no such/pathway", None, "pathway"),
        (SINCE, UNTIL, None, "a team of/mine", "team"),
        (datetime(2026, 1, 1), UNTIL, None, None, "from"),
    ],
)
def test_a_bad_query_is_refused_with_its_field(
    since: datetime, until: datetime, pathway: str | None, team: str | None, field: str
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        MeasureQuery(since, until, pathway, team)
    assert [p.field for p in refused.value.problems] == [field]


def test_the_suppression_threshold_is_a_setting_and_never_below_two() -> None:
    assert Settings().report_min_count == 5
    assert Settings.from_env({"CAREPATH_REPORT_MIN_COUNT": "10"}).report_min_count == 10
    with pytest.raises(ValueError, match="CAREPATH_REPORT_MIN_COUNT"):
        Settings.from_env({"CAREPATH_REPORT_MIN_COUNT": "1"})
    with pytest.raises(ValueError, match="CAREPATH_REPORT_MIN_COUNT"):
        Settings.from_env({"CAREPATH_REPORT_MIN_COUNT": "few"})


def test_the_cosd_export_has_a_row_per_patient_and_item_with_dates(carepath: CarePath) -> None:
    with unit_of_work(carepath.sessions) as session:
        ids = write_cohort(session)
    refresh_summary(carepath.sessions, AS_OF, carepath.settings.referral_timeframes)
    with read_only(carepath.sessions) as session:
        rows = cosd_rows(session, MeasureQuery(SINCE, UNTIL, P))
    assert all(tuple(row) == COSD_COLUMNS for row in rows)
    per_instance = {letter: [r for r in rows if r["instance_id"] == ids[letter]] for letter in ids}
    # A, B and C have 3, 2 and 2 items; E one; F none (one row, its item columns empty); G is lung.
    assert {letter: len(found) for letter, found in per_instance.items()} == {
        "A": 3,
        "B": 2,
        "C": 2,
        "E": 1,
        "F": 1,
        "G": 0,
    }
    [psychology] = [r for r in per_instance["A"] if r["item_code"] == "psychology_referral"]
    assert psychology["patient_ref"].startswith("MRN-REPORT-A-")
    assert {k: v for k, v in psychology.items() if k not in ("patient_ref", "instance_id")} == {
        "pathway_id": P,
        "diagnosis_date": "2026-01-05",
        "hna_offered_date": "2026-01-15",
        "hna_completed_date": "2026-01-25",
        "care_plan_agreed_date": "2026-01-30",
        "treatment_end_date": "2026-03-06",
        "eot_summary_date": "2026-04-05",
        "cancer_care_review_date": "2026-03-26",
        "item_kind": "referral",
        "item_code": "psychology_referral",
        "service": "psychology",
        "urgency": "urgent",
        "item_status": "first_contact",
        "proposed_date": "2026-01-25",
        "agreed_date": "2026-01-30",
        "referred_date": "2026-01-30",
        "accepted_date": "2026-02-02",
        "first_contact_date": "2026-02-03",
        "completed_date": "",
        "ended_date": "",
    }
    [f] = per_instance["F"]
    assert (f["diagnosis_date"], f["hna_completed_date"], f["eot_summary_date"], f["item_code"]) == (
        "2025-12-20",
        "2026-01-10",
        "",
        "",
    )
    [declined] = [r for r in per_instance["B"] if r["item_code"] == "physio_referral"]
    assert (declined["item_status"], declined["ended_date"]) == ("service_declined", "2026-02-12")


def test_the_cosd_export_is_bounded(carepath: CarePath, monkeypatch: pytest.MonkeyPatch) -> None:
    with unit_of_work(carepath.sessions) as session:
        write_cohort(session)
    refresh_summary(carepath.sessions, AS_OF, carepath.settings.referral_timeframes)
    monkeypatch.setattr("engine.reports.cosd.MAX_EXPORT_ROWS", 8)
    with read_only(carepath.sessions) as session, pytest.raises(InvalidInputError) as refused:
        cosd_rows(session, MeasureQuery(SINCE, UNTIL, P))
    assert [p.field for p in refused.value.problems] == ["to"]


def test_the_cosd_export_issues_as_many_statements_for_50_patients_as_for_10(carepath: CarePath) -> None:
    """10, then 50 exported patients (A, B, C, E and F, copied): the same few statements each time (which
    instances, then their rows; on PostgreSQL, JIT off and the sort's memory set first), and no ORM object
    loaded (the export reads plain columns; the access log is told who was exported: tests/api)."""

    def export() -> tuple[list[dict[str, str]], list[str]]:
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement.lstrip().split()[0].upper())

        with read_only(carepath.sessions) as session:
            session.execute(select(1))  # the transaction's own opening statements are not the export's
            event.listen(carepath.db, "before_cursor_execute", count)
            try:
                rows = cosd_rows(session, MeasureQuery(SINCE, UNTIL, P))
            finally:
                event.remove(carepath.db, "before_cursor_execute", count)
            assert len(session.identity_map) == 0
        return rows, statements

    def copies(numbers: range) -> dict[str, Any]:
        return {f"{letter}{n}": patient for n in numbers for letter, patient in cohort().items()}

    with unit_of_work(carepath.sessions) as session:
        write_cohort(session, copies(range(2)))
    refresh_summary(carepath.sessions, AS_OF, carepath.settings.referral_timeframes)
    ten, few = export()
    with unit_of_work(carepath.sessions) as session:
        write_cohort(session, copies(range(2, 10)))
    refresh_summary(carepath.sessions, AS_OF, carepath.settings.referral_timeframes)
    fifty, many = export()
    assert (len({row["instance_id"] for row in ten}), len(ten)) == (10, 18)
    assert (len({row["instance_id"] for row in fifty}), len(fifty)) == (50, 90)
    # On PostgreSQL a first statement sets the transaction's JIT off and its sort memory.
    assert few == many and len(few) == (3 if carepath.db.dialect.name == "postgresql" else 2), few


def test_the_cosd_csv_is_the_same_whichever_database_writes_it(
    carepath: CarePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the database writes the CSV (COPY): byte for byte what Python's writer makes of the rows,
    with plain cells, then with cells that need quoting or look like formulas, and bounded the same way."""
    with unit_of_work(carepath.sessions) as session:
        ids = write_cohort(session)
    refresh_summary(carepath.sessions, AS_OF, carepath.settings.referral_timeframes)
    query = MeasureQuery(SINCE, UNTIL, P)

    def both() -> tuple[str, str]:
        with read_only(carepath.sessions) as session:
            written = cosd_csv(session, query)
        with read_only(carepath.sessions) as session:
            return written, csv_of_texts(COSD_COLUMNS, cosd_table(session, query))

    plain, expected = both()
    assert plain == expected and plain.count("\r\n") == 1 + 9 and '"' not in plain
    hostile = {"A": "=cmd|' /C calc'!A0", "B": "+44 20 7946 0000", "C": 'Smith, "J"\r\nsecond line', "E": "-"}
    with unit_of_work(carepath.sessions) as session:
        for letter, ref in hostile.items():
            session.execute(update(PathwayInstance).where(PathwayInstance.id == ids[letter]).values(patient_ref=ref))
    quoted, expected = both()
    assert quoted == expected
    rows = list(csv.reader(io.StringIO(quoted, newline="")))
    assert {row[0] for row in rows[1:]} >= {
        "'=cmd|' /C calc'!A0",
        "'+44 20 7946 0000",
        'Smith, "J"\r\nsecond line',
        "'-",
    }
    monkeypatch.setattr("engine.reports.cosd.MAX_EXPORT_ROWS", 8)
    with read_only(carepath.sessions) as session, pytest.raises(InvalidInputError) as refused:
        cosd_csv(session, query)
    assert [p.field for p in refused.value.problems] == ["to"]


def test_csv_cells_that_look_like_formulas_are_written_as_text() -> None:
    text = csv_text(
        ("code", "count"),
        [
            {"code": '=HYPERLINK("http://x")', "count": 3},
            {"code": "+1", "count": 0},
            {"code": "psychology", "count": None},
        ],
    )
    assert text.splitlines() == ["code,count", '"\'=HYPERLINK(""http://x"")",3', "'+1,0", "psychology,"]


def test_csv_of_text_rows_writes_what_csv_text_writes() -> None:
    """The export's fast writer (rows handed to the C writer as they are) escapes a formula-like cell in any
    column, and quotes as csv_text does."""
    columns = ("patient_ref", "code", "date")
    rows = [
        ("MRN-1", "psychology", "2026-01-05"),
        ("=1+1", "x", ""),
        ("MRN-2", "-2", "@SUM(A1)"),
        ("MRN-3", "a\x00=b", "\tc"),
        ('MRN "4"', "line\r\nbreak", "+44 20"),
        ("", "", ""),
    ]
    expected = csv_text(columns, [dict(zip(columns, row, strict=True)) for row in rows])
    assert csv_of_texts(columns, rows) == expected
    assert expected.splitlines()[2:4] == ["'=1+1,x,", "MRN-2,'-2,'@SUM(A1)"]


def test_the_measure_table_has_a_row_per_figure_and_says_what_was_suppressed() -> None:
    report = {
        "measures": [
            {
                "id": "m",
                "title": "M",
                "numerator": None,
                "denominator": 40,
                "pending": 0,
                "rate": None,
                "suppressed": ["numerator", "rate"],
            }
        ],
        "referrals": [],
        "declined": [],
        "warning_signs": [
            {"colour": "red", "reports": 6, "triaged": 0, "median_hours_to_triage": None, "suppressed": []}
        ],
    }
    assert measure_table(report) == [
        {"section": "measures", "group": "m", "figure": "numerator", "value": "suppressed"},
        {"section": "measures", "group": "m", "figure": "denominator", "value": "40"},
        {"section": "measures", "group": "m", "figure": "pending", "value": "0"},
        {"section": "measures", "group": "m", "figure": "rate", "value": "suppressed"},
        {"section": "warning_signs", "group": "red", "figure": "reports", "value": "6"},
        {"section": "warning_signs", "group": "red", "figure": "triaged", "value": "0"},
        {"section": "warning_signs", "group": "red", "figure": "median_hours_to_triage", "value": ""},
    ]
