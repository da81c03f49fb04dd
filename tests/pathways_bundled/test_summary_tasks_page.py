"""The patient page tells two waiting "Write the end of treatment summary" tasks apart: each shows the
phase of care it is for, when that course ended and by when the summary is to be written (and, once the
worker's scan opened it, that it is overdue). An instance waits for two when a recurrence's treatment
ends before the first-line summary is written (engine.careplan.summaries). Server-rendered: no script
is needed for this, so Flask's test client reads the page."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine import ManualClock
from engine.access import create_token
from engine.db.session import unit_of_work
from tests.test_scale_queries import statements

from .journeys import course_ended, recurrence_treated


@pytest.fixture
def app(bundled_http: Flask) -> Flask:
    return bundled_http


def _clinician(app: Flask) -> FlaskClient:
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(session, "clinician", "test clinician", engine.clock)
    client = app.test_client()
    # The sign-in link shows a button (never signs in on a GET); the button POSTs with the CSRF token.
    page = client.get(f"/sign-in?token={secret}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf and client.post("/sign-in", data={"token": secret, "csrf_token": csrf.group(1)}).status_code == 303
    return client


def _summary_lines(html: str, task_ids: list[str]) -> list[str]:
    """The ready-task list's line of each task, in words (tags stripped, spaces collapsed)."""
    lines = []
    for task_id in task_ids:
        [item] = re.findall(rf"<li>(?:(?!</li>).)*/tasks/{task_id}\".*?</li>", html, re.DOTALL)
        lines.append(" ".join(re.sub(r"<[^>]+>", "", item).split()))
    return lines


def _due(ended: date) -> str:
    return (ended + timedelta(weeks=6)).isoformat()


def test_two_waiting_summary_tasks_show_their_phase_and_deadline(app: Flask, journey_clock: ManualClock) -> None:
    engine = app.extensions["carepath"]
    j = course_ended(engine, journey_clock, "breast", "SYN-EOTP-0001")
    first_ended = journey_clock.now().date()
    recurrence_treated(j, weeks_later=3)  # 5 weeks on: the first-line summary is within its 6 weeks still
    second_ended = journey_clock.now().date()
    first, second = [t["id"] for t in j.view.ready_tasks if t["element"] == "write_summary"]
    client = _clinician(app)
    url = f"/patients/{j.view.id}"
    task = "Write the end of treatment summary (Treating team)"
    expected = [
        f"{task}: First treatment (course ended {first_ended}), to be written by {_due(first_ended)}",
        f"{task}: Treatment of a recurrence (course ended {second_ended}), to be written by {_due(second_ended)}",
    ]

    # Before the worker's scan has noted them (read from each task's own data), and after (their rows).
    assert _summary_lines(client.get(url).get_data(as_text=True), [first, second]) == expected
    assert engine.treatment_summaries.open_due() == 0
    assert _summary_lines(client.get(url).get_data(as_text=True), [first, second]) == expected

    # Past the first-line summary's 6 weeks, the scan opens its overdue task: that line says so, alone.
    j.wait(8)
    client = _clinician(app)  # signed in again: a web session ends a shift (8 hours) after sign-in
    assert engine.treatment_summaries.open_due() == 1
    html = client.get(url).get_data(as_text=True)
    assert _summary_lines(html, [first, second]) == [expected[0] + " Overdue", expected[1]]
    sv = client.get(url, headers={"Accept-Language": "sv"}).get_data(as_text=True)
    assert "Behandling av återfall (behandlingen avslutades" in sv and f"ska skrivas senast {_due(second_ended)}" in sv


def _work_list_lines(html: str, task_ids: list[str]) -> list[str]:
    """The work list's task cell of each task, in words (tags stripped, spaces collapsed)."""
    lines = []
    for task_id in task_ids:
        [row] = re.findall(
            rf"<tr role=\"row\" class=\"nhsuk-table__row\">(?:(?!</tr>).)*/tasks/{task_id}\".*?</tr>", html, re.DOTALL
        )
        cell = row.split("</td>")[0]
        lines.append(" ".join(re.sub(r"<[^>]+>", "", cell).split()).removeprefix("Task ").removeprefix("Uppgift "))
    return lines


def test_the_work_list_shows_each_waiting_summary_tasks_phase_and_deadline(
    app: Flask, journey_clock: ManualClock
) -> None:
    engine = app.extensions["carepath"]
    j = course_ended(engine, journey_clock, "breast", "SYN-EOTW-0001")
    first_ended = journey_clock.now().date()
    recurrence_treated(j, weeks_later=3)
    second_ended = journey_clock.now().date()
    first, second = [t["id"] for t in j.view.ready_tasks if t["element"] == "write_summary"]
    others = [t for t in j.view.ready_tasks if t["element"] != "write_summary"]
    assert others  # the patient waits for other tasks too
    client = _clinician(app)
    task = "Write the end of treatment summary"  # its lane has a column of its own

    # Before the worker's scan has noted their rows: the tasks are listed, without a phase.
    response = client.get("/work-list")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'data-test="summary-phase"' not in html
    assert _work_list_lines(html, [first, second]) == [task, task]

    engine.treatment_summaries.open_due()
    expected = [
        f"{task}: First treatment (course ended {first_ended}), to be written by {_due(first_ended)}",
        f"{task}: Treatment of a recurrence (course ended {second_ended}), to be written by {_due(second_ended)}",
    ]
    html = client.get("/work-list").get_data(as_text=True)
    assert _work_list_lines(html, [first, second]) == expected
    assert html.count('data-test="summary-phase"') == 2  # the patient's other tasks show none
    assert all(": " not in line for line in _work_list_lines(html, [t["id"] for t in others]))

    j.wait(8)  # past the first-line summary's 6 weeks: the scan opens its overdue task
    client = _clinician(app)  # signed in again: a web session ends a shift (8 hours) after sign-in
    assert engine.treatment_summaries.open_due() == 1
    html = client.get("/work-list").get_data(as_text=True)
    assert _work_list_lines(html, [first, second]) == [expected[0] + " Overdue", expected[1]]
    sv = client.get("/work-list", headers={"Accept-Language": "sv"}).get_data(as_text=True)
    assert "Behandling av återfall (behandlingen avslutades" in sv and f"ska skrivas senast {_due(second_ended)}" in sv


def test_the_work_list_reads_the_summaries_of_its_page_in_one_query(app: Flask, journey_clock: ManualClock) -> None:
    """However many write_summary tasks the page lists, their rows are read in one statement, and the
    page issues as many statements with one patient's two tasks as with three patients' tasks."""
    engine = app.extensions["carepath"]
    j = course_ended(engine, journey_clock, "breast", "SYN-EOTW-0002")
    recurrence_treated(j, weeks_later=3)
    engine.treatment_summaries.open_due()
    client = _clinician(app)

    def page() -> tuple[int, int, str]:
        with statements(engine.db) as seen:
            html = client.get("/work-list").get_data(as_text=True)
        return len(seen), sum("treatment_summaries" in sql and ".task_id IN" in sql for sql, _ in seen), html

    page()  # the pathway's forms and the access log's first use, once
    alone, reads, html = page()
    assert reads == 1 and html.count('data-test="summary-phase"') == 2
    for patient in ("SYN-EOTW-0003", "SYN-EOTW-0004"):
        course_ended(engine, journey_clock, "breast", patient)
    engine.treatment_summaries.open_due()
    three, reads, html = page()
    assert reads == 1 and html.count('data-test="summary-phase"') == 4
    assert three == alone
