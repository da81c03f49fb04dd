"""A patient's concern scores across assessments drawn on the patient page (issue 21 point 3): a
server-rendered SVG with a line per concern over the assessments' dates on the 0-10 scale, named for
assistive technology, beside the table of the same numbers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from web_helpers import make_token, sign_in_with

from engine.db.models import RuleEvaluationRecord
from engine.db.session import unit_of_work

SVG = "{http://www.w3.org/2000/svg}"
Client = Callable[[str], FlaskClient]


def _assessed_twice(app: Flask) -> str:
    """An instance assessed through its pathway (worry 4, fatigue 2), then again 30 days later (worry 3,
    pain 1): the second evaluation stored as the rules store one, with the first one's rule versions."""
    carepath = app.extensions["carepath"]
    view = carepath.instances.start("test_careplan", "MRN-6006", "system:test", {"age": 54})
    carepath.instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"concerns": {"worry_fear_anxiety": 4, "fatigue": 2}}, "clinician:test"
    )
    with unit_of_work(carepath.sessions) as session:
        first = session.scalars(select(RuleEvaluationRecord).where(RuleEvaluationRecord.instance_id == view.id)).one()
        session.add(
            RuleEvaluationRecord(
                id="00000000-0000-4000-8000-000000000021",
                ruleset_name=first.ruleset_name,
                ruleset_version=first.ruleset_version,
                catalogue_version=first.catalogue_version,
                created_at=first.created_at + timedelta(days=30),
                instance_id=view.id,
                ordinal=first.ordinal + 1,
                task_id=None,
                facts=[
                    *(fact for fact in first.facts if fact.get("t") != "concern"),
                    _concern(first.facts, "worry_fear_anxiety", 3),
                    _concern(first.facts, "pain", 1, "physical"),
                ],
                fired=[],
                outcomes={},
            )
        )
    return str(view.id)


def _concern(facts: list[dict[str, Any]], code: str, score: int, domain: str | None = None) -> dict[str, Any]:
    """A concern fact as the rules compiler writes one (engine.rules.compiler.build_facts)."""
    known = {fact["code"]: fact["domain"] for fact in facts if fact.get("t") == "concern"}
    return {"id": f"concern:{code}", "t": "concern", "code": code, "domain": domain or known[code], "score": score}


def _chart(html: str) -> ET.Element:
    start = html.index('data-test="concerns-chart"')
    svg = html[html.index("<svg", start) : html.index("</svg>", start) + len("</svg>")]
    return ET.fromstring(svg)


def test_the_patient_page_draws_a_line_per_concern_over_the_assessments(app: Flask, signed_in: Client) -> None:
    instance_id = _assessed_twice(app)
    html = signed_in("clinician").get(f"/patients/{instance_id}").get_data(as_text=True)
    chart = _chart(html)
    assert chart.get("role") == "img" and chart.get("aria-labelledby") == "concerns-title concerns-desc"
    assert chart.find(f"{SVG}title").text == "A line per concern over the needs assessments"
    assert "from 0 (no concern) to 10 (worst)" in (chart.find(f"{SVG}desc").text or "")
    series = {g.get("data-series"): g for g in chart.iter(f"{SVG}g") if g.get("class") == "cp-chart-series"}
    assert sorted(series) == ["fatigue", "pain", "worry fear anxiety"]  # one per concern scored at any assessment
    dates = ("2026-01-15", "2026-02-14")
    said = {name: [c.find(f"{SVG}title").text for c in g.iter(f"{SVG}circle")] for name, g in series.items()}
    assert said == {
        "fatigue": [f"fatigue, {dates[0]}: 2", f"fatigue, {dates[1]}: 0"],  # not scored again: 0
        "pain": [f"pain, {dates[0]}: 0", f"pain, {dates[1]}: 1"],
        "worry fear anxiety": [f"worry fear anxiety, {dates[0]}: 4", f"worry fear anxiety, {dates[1]}: 3"],
    }
    # Every point stands at its score on the checklist's 0-10 axis, though no score reaches 5.
    axis = {
        t.text: float(t.get("y") or 0) - 4
        for t in chart.iter(f"{SVG}text")
        if t.get("text-anchor") == "end" and (t.text or "").replace(".", "").isdigit()
    }
    assert set(axis) == {"0", "2.5", "5", "7.5", "10"}
    for name, group in series.items():
        for circle, words in zip(group.iter(f"{SVG}circle"), said[name], strict=True):
            score = int(words.rsplit(": ", 1)[1])
            expected = axis["0"] - (axis["0"] - axis["10"]) * score / 10
            assert abs(float(circle.get("cy") or 0) - expected) < 0.2, (name, words)
    assert all(len(g.findall(f"{SVG}polyline")) == 1 for g in series.values())  # each a joined line
    # The numbers are in the table after the chart, row by row.
    assert html.index('data-test="concerns-chart"') < html.index('data-test="concern-trends"')
    row = html[html.index('data-concern="pain"') :]
    assert '<td class="nhsuk-table__cell">1 (+1)</td>' in row[: row.index("</tr>")]


def test_the_chart_escapes_codes_and_is_for_staff_only(app: Flask, signed_in: Client) -> None:
    instance_id = _assessed_twice(app)
    carepath = app.extensions["carepath"]
    with unit_of_work(carepath.sessions) as session:  # a code is a catalogue's, written by authors: escaped
        record = session.get(RuleEvaluationRecord, "00000000-0000-4000-8000-000000000021")
        assert record is not None
        record.facts = [_concern(record.facts, "pain", 3) | {"code": '<script>"x"</script>'}]
    html = signed_in("clinician").get(f"/patients/{instance_id}").get_data(as_text=True)
    chart = _chart(html)
    names = [g.get("data-series") for g in chart.iter(f"{SVG}g") if g.get("class") == "cp-chart-series"]
    assert '<script>"x"</script>' in names and "<script>" not in html
    # The patient signed in to their own records: the staff's page is forbidden, their plan has no scores chart.
    patient = app.test_client()
    assert sign_in_with(patient, make_token(app, "patient", "MRN-6006")).status_code == 303
    staff_page: Any = patient.get(f"/patients/{instance_id}")
    assert staff_page.status_code == 403 and "cp-chart" not in staff_page.get_data(as_text=True)
    own = patient.get(f"/my/plans/{instance_id}")
    assert own.status_code == 200 and "cp-chart" not in own.get_data(as_text=True)


def test_no_chart_before_the_first_assessment(app: Flask, signed_in: Client) -> None:
    carepath = app.extensions["carepath"]
    view = carepath.instances.start("test_careplan", "MRN-6007", "system:test", {"age": 54})
    html = signed_in("clinician").get(f"/patients/{view.id}").get_data(as_text=True)
    assert 'data-test="concerns-chart"' not in html and 'data-test="concern-trends"' not in html
