"""The measures over time, weekly referrals by urgency and the backlog of open referrals on the
synthetic cohort (tests/report_cohort.py), and the SVG charts that draw them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from report_cohort import AS_OF, SINCE, UNTIL, P, Patient, days, write_cohort

from engine import CarePath
from engine.db.session import read_only, unit_of_work
from engine.reports import MeasureQuery, measures_report, refresh_summary, service_insight
from engine.reports.charts import MAX_CATEGORIES, line_chart, stacked_bars
from engine.settings import ReferralTimeframes

DEFAULT_TIMEFRAMES = ReferralTimeframes()

SVG = "{http://www.w3.org/2000/svg}"
WEEKS = [
    "2025-12-29",
    "2026-01-05",
    "2026-01-12",
    "2026-01-19",
    "2026-01-26",
    "2026-02-02",
    "2026-02-09",
    "2026-02-16",
    "2026-02-23",
    "2026-03-02",
    "2026-03-09",
    "2026-03-16",
    "2026-03-23",
    "2026-03-30",
]


@pytest.fixture
def insight(carepath: CarePath) -> object:
    with unit_of_work(carepath.sessions) as session:
        write_cohort(session)
    refresh_summary(carepath.sessions, AS_OF, carepath.settings.referral_timeframes)
    with read_only(carepath.sessions) as session:
        return service_insight(session, MeasureQuery(SINCE, UNTIL, P), AS_OF, 2, DEFAULT_TIMEFRAMES)


def test_weekly_referrals_by_urgency_and_the_backlog(insight: object) -> None:
    weekly = insight.weekly_referrals  # type: ignore[attr-defined]
    assert weekly.labels == WEEKS
    one = None  # a single referral is a small count: suppressed
    assert weekly.series == {
        "emergency": [0] * 11 + [one, 0, 0],
        "urgent": [0, 0, 0, 0, one, one, 0, 0, 0, one, 0, 0, 0, 0],
        "soon": [0] * 6 + [one] + [0] * 7,
        "routine": [0] * 6 + [one] + [0] * 7,
    }
    backlog = insight.backlog  # type: ignore[attr-defined]
    assert backlog.labels == WEEKS
    # Open at each week's end: r1 (30 Jan - 3 Feb), r2 (4 - 9 Feb), r4 (10 Feb - 1 Mar), r3 (2 Mar on).
    assert backlog.series == {"open referrals": [0, 0, 0, 0, one, one, one, one, 0, one, one, one, one, one]}


def test_the_measures_per_month(carepath: CarePath) -> None:
    # Besides the cohort, six more diagnosed in January: four offered an HNA on day 3, two on day 40.
    more = {f"M{n}": Patient(P, days(n), tasks=[("offer_hna", days(n + (3 if n < 4 else 40)))]) for n in range(6)}
    with unit_of_work(carepath.sessions) as session:
        write_cohort(session)
        write_cohort(session, more)
    refresh_summary(carepath.sessions, AS_OF, carepath.settings.referral_timeframes)
    with read_only(carepath.sessions) as session:
        monthly = service_insight(session, MeasureQuery(SINCE, UNTIL, P), AS_OF, 2, DEFAULT_TIMEFRAMES).monthly
    assert monthly.labels == ["2026-01", "2026-02", "2026-03"]
    # January: A, C and four more met it; B and two more did not: 6 of 9. February: nobody diagnosed.
    # March: E alone (0 of 1: a count of one is suppressed, and the rate with it).
    assert monthly.series["HNA offered within 31 days of diagnosis"] == [round(6 / 9, 4), None, None]
    rows = monthly.rows()
    assert rows[0]["label"] == "2026-01" and rows[0]["HNA offered within 31 days of diagnosis"] == round(6 / 9, 4)


def test_a_bar_chart_names_itself_and_says_each_value_in_words() -> None:
    svg = stacked_bars(
        "weekly",
        "Referrals <per> week",
        "By urgency",
        ["2026-01-05", "<script>"],
        {"urgent": [3, None], "routine": [1, 2]},
        unit="referrals",
    )
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.get("aria-labelledby") == "weekly-title weekly-desc"
    assert root.find(f"{SVG}title").text == "Referrals <per> week"
    words = [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g") if g.find(f"{SVG}title") is not None]
    assert words == ["2026-01-05: urgent 3, routine 1", "<script>: urgent suppressed, routine 2"]
    assert "<script>" not in svg  # escaped
    legend = [t.text for t in root.find(f"{SVG}g[@class='cp-chart-legend']").iter(f"{SVG}text")]
    assert legend == ["urgent", "routine"]
    assert len(root.findall(f".//{SVG}rect")) == 3 + 2  # three bar parts drawn, two legend keys


def test_a_line_chart_leaves_a_gap_for_a_suppressed_value() -> None:
    svg = line_chart("rates", "Rates", "Per month", ["a", "b", "c", "d"], {"m": [0.5, 0.7, None, 0.9]}, top=1)
    root = ET.fromstring(svg)
    assert len(root.findall(f".//{SVG}polyline")) == 1  # a, b joined; d alone after the gap
    assert [c.find(f"{SVG}title").text for c in root.iter(f"{SVG}circle")] == ["m, a: 0.5", "m, b: 0.7", "m, d: 0.9"]


@pytest.mark.parametrize(
    "chart_id,labels,values",
    [
        ("ok", ["a", "b"], [1]),
        ("ok", ["x"] * (MAX_CATEGORIES + 1), [1] * (MAX_CATEGORIES + 1)),
        ('"><script>', ["a"], [1]),
    ],
)
def test_a_chart_refuses_what_it_cannot_draw(chart_id: str, labels: list[str], values: list[int]) -> None:
    with pytest.raises(ValueError):
        stacked_bars(chart_id, "T", "D", labels, {"s": values})


def test_many_lines_each_look_different_and_the_legend_fits() -> None:
    """A patient may score many concerns: 20 lines, no two drawn alike (colour and dash), each in a group
    that names it, and the chart tall enough for every legend entry."""
    names = [f"concern {n}" for n in range(20)]
    svg = line_chart("concerns", "Concerns", "Scores", ["a", "b"], {name: [1, 2] for name in names}, top=10)
    root = ET.fromstring(svg)
    groups = [g for g in root.iter(f"{SVG}g") if g.get("class") == "cp-chart-series"]
    assert [g.get("data-series") for g in groups] == names
    looks = {(line.get("stroke"), line.get("stroke-dasharray")) for g in groups for line in g.iter(f"{SVG}polyline")}
    assert len(looks) == 20
    height = float(root.get("viewBox", "").split()[3])
    last_entry = max(float(t.get("y", 0)) for t in root.find(f"{SVG}g[@class='cp-chart-legend']").iter(f"{SVG}text"))
    assert last_entry < height


def test_a_long_series_name_is_wrapped_in_the_legend_not_cut_off() -> None:
    """The measures' names ("HNA completed within 31 days of diagnosis") are longer than the room right of
    the plot: each is wrapped onto lines that fit, entries do not overlap, and the chart is tall enough."""
    names = ["HNA completed within 31 days of diagnosis", "Cancer care review within 12 months of diagnosis", "x"]
    svg = line_chart("measures", "M", "D", ["a"], {name: [0.5] for name in names}, top=1)
    root = ET.fromstring(svg)
    texts = list(root.find(f"{SVG}g[@class='cp-chart-legend']").iter(f"{SVG}text"))
    for text, name in zip(texts, names, strict=True):
        lines = [text.text or "", *[span.text or "" for span in text.iter(f"{SVG}tspan")]]
        assert " ".join(lines) == name and all(len(line) <= 20 for line in lines)
    tops = [float(t.get("y", 0)) for t in texts]
    heights = [14 * (len(list(t.iter(f"{SVG}tspan")))) for t in texts]
    assert all(tops[i] + heights[i] < tops[i + 1] for i in range(len(texts) - 1))  # no entry runs into the next
    assert tops[-1] + heights[-1] < float(root.get("viewBox", "").split()[3])


def test_the_service_page_reads_the_measures_of_the_report(carepath: CarePath) -> None:
    """The page adds up its months' counts instead of reading the measures again: the same report."""
    more = {
        f"M{n}": Patient(P, days(n * 9), tasks=[("offer_hna", days(n * 9 + (3 if n % 2 else 40)))]) for n in range(8)
    }
    with unit_of_work(carepath.sessions) as session:
        write_cohort(session)
        write_cohort(session, more)
    refresh_summary(carepath.sessions, AS_OF, carepath.settings.referral_timeframes)
    with read_only(carepath.sessions) as session:
        for pathway in (P, None):
            query = MeasureQuery(SINCE, UNTIL, pathway)
            assert service_insight(session, query, AS_OF, 2, DEFAULT_TIMEFRAMES).report == measures_report(
                session, query, AS_OF, 2, DEFAULT_TIMEFRAMES
            )
            assert service_insight(session, query, AS_OF, 5, DEFAULT_TIMEFRAMES).report == measures_report(
                session, query, AS_OF, 5, DEFAULT_TIMEFRAMES
            )
