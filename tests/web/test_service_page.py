"""The manager's page (/service): the measures of a period, each chart beside a table of its numbers,
small counts suppressed, a bad period refused with an error summary, and no page for other roles."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from report_cohort import AS_OF, P, Patient, days, write_cohort

from engine.db.session import unit_of_work
from engine.reports import refresh_summary

PERIOD = f"/service?from=2026-01-01&to=2026-04-01&pathway={P}"


@pytest.fixture
def cohort(app: Flask) -> dict[str, str]:
    engine = app.extensions["carepath"]
    engine.clock.set(AS_OF)
    # Ten more patients diagnosed in January, offered an HNA on day 3: enough to show some counts.
    more = {f"M{n}": Patient(P, days(n), tasks=[("offer_hna", days(n + 3))]) for n in range(10)}
    with unit_of_work(engine.sessions) as session:
        ids = write_cohort(session)
        write_cohort(session, more)
    refresh_summary(engine.sessions, AS_OF, engine.settings.referral_timeframes)
    return ids


def _html(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def test_the_manager_lands_on_the_service_page_and_sees_each_chart_with_its_table(
    signed_in: Callable[[str], FlaskClient], cohort: dict[str, str]
) -> None:
    client = signed_in("manager")
    assert client.get("/").headers["Location"].endswith("/service")
    html = _html(client, PERIOD)
    for chart in ("measures", "referrals", "backlog"):
        found = re.search(rf'data-test="{chart}-chart">(<svg.*?</svg>)</div>', html, re.S)
        assert found, chart
        svg = ET.fromstring(found.group(1))
        assert svg.get("role") == "img" and svg.get("aria-labelledby") == f"{chart}-title {chart}-desc"
        assert f'data-test="{chart}-table"' in html
    # HNA offered within 31 days, January: A, C and the ten met it, B did not -> 12 of 13 (complement 1:
    # the 12 is suppressed); the denominator of 14 (E in March) is shown.
    row = re.search(r"<th scope=\"row\">HNA offered within 31 days of diagnosis</th>(.*?)</tr>", html, re.S)
    assert row and "suppressed" in row.group(1) and "<td>14</td>" in row.group(1)
    assert "MRN-REPORT" not in html and all(i not in html for i in cohort.values())


def test_the_numbers_beside_the_measures_chart_are_its_monthly_shares(
    signed_in: Callable[[str], FlaskClient], cohort: dict[str, str]
) -> None:
    html = _html(signed_in("manager"), PERIOD)
    table = re.search(r'data-test="measures-table">(.*?)</table>', html, re.S)
    assert table
    months = re.findall(r'<th scope="row">(\d{4}-\d{2})</th>', table.group(1))
    assert months == ["2026-01", "2026-02", "2026-03"]


def test_the_period_names_pathways_by_title_and_the_suppressed_counts_plainly(
    app: Flask, signed_in: Callable[[str], FlaskClient]
) -> None:
    """The pathway is chosen from the deployed ones by title (a manager does not know ids); an id in the
    address that no pathway has is kept, as it was asked for."""
    client = signed_in("manager")
    html = _html(client, "/service?pathway=test_assessment")
    select = re.search(r'<select class="nhsuk-select" id="period-pathway" name="pathway">(.*?)</select>', html, re.S)
    assert select and '<option value="">Every pathway</option>' in select.group(1)
    assert '<option value="test_assessment" selected>Test assessment pathway</option>' in select.group(1)
    threshold = app.extensions["carepath"].settings.report_min_count
    covers = re.search(r'data-test="covers">(.*?)</p>', html, re.S)
    assert covers and "Test assessment pathway" in covers.group(1)
    assert f"Counts from 1 to {threshold - 1} are suppressed." in covers.group(1) and "minus" not in covers.group(1)
    unknown = _html(client, "/service?pathway=no_such_pathway")
    assert '<option value="no_such_pathway" selected>no_such_pathway</option>' in unknown


@pytest.mark.parametrize(
    "query,field", [("from=31/01/2026", "from"), ("from=2026-04-01&to=2026-01-01", "to"), ("pathway=../etc", "pathway")]
)
def test_a_bad_period_gets_an_error_summary(signed_in: Callable[[str], FlaskClient], query: str, field: str) -> None:
    html = _html(signed_in("manager"), f"/service?{query}", 400)
    assert 'data-test="problems"' in html and f'href="#period-{field}"' in html and f'id="period-{field}"' in html


@pytest.mark.parametrize("role", ["clinician", "system", "author", "admin"])
def test_other_roles_cannot_see_it(signed_in: Callable[[str], FlaskClient], role: str) -> None:
    client = signed_in(role)
    assert client.get("/service").status_code == 403
    assert 'href="/service"' not in client.get("/pathways").get_data(as_text=True)


def test_the_auditor_sees_it_in_the_menu(signed_in: Callable[[str], FlaskClient]) -> None:
    client = signed_in("auditor")
    assert 'href="/service"' in _html(client, "/audit/trail")
    assert _html(client, "/service").count("<svg") == 3
