"""Care teams on the web pages (issue 18, point 2): the pages apply the API's scope, walked from the URL map so
that a page added without a scope decision fails here; a clinician breaks the glass with a reason form."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from web_helpers import csrf_of, sign_in_with

from api.scope import KINDS
from engine.access import BREAK_GLASS_ROLES, PERMISSIONS, STAFF_ROLES, create_token
from engine.db.models import AccessRecord
from engine.db.session import unit_of_work

PLACES = {"own team": ("rx1", "breast"), "other team": ("rx1", "lung"), "other organisation": ("rx2", "breast")}
# Pages naming no patient's record: the lists (filtered by the user's teams) and pages about pathways, not patients.
LISTS = {"/work-list", "/patients", "/audit/trail"}
NOT_PATIENTS = {
    "pathways.read",
    "pathways.deploy",
    "pathways.validate",
    "pathways.migrate",
    "pathways.activate",
    "rule_sets.deploy",
    "rule_sets.activate",
    "migrations.read",
}
# A patient's own pages (/my): scoped to their patient reference (engine.patients), not to care teams.
OWN = {"patient.read", "patient.submit", "patient.report", "patient.ask"}
# Aggregated measures, within the user's organisation (engine.reports.MeasureQuery): no patient named.
REPORTS = {"/service"}
GLASS_FORM = "/patients/break-glass"  # the break-glass itself (a POST naming the instance in its form)
# Starting a pathway: placed in one of the user's own teams (api.scope.start_placement; tests/web/test_start_pages.py).
STARTS = {"/patients/start", "/patients/start/<pathway_id>"}


def _engine(app: Flask) -> Any:
    return app.extensions["carepath"]


def _sign_in(app: Flask, role: str, organisation: str | None, teams: list[str] | None) -> FlaskClient:
    engine = _engine(app)
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(session, role, role, engine.clock, organisation=organisation, teams=teams)
    client = app.test_client()
    assert sign_in_with(client, secret).status_code == 303
    return client


def _csrf(client: FlaskClient) -> str:
    with client.session_transaction() as session:
        return str(session["csrf"])


def _world(app: Flask) -> dict[str, Any]:
    views = {}
    for name, (organisation, team) in PLACES.items():
        views[name] = _engine(app).instances.start(
            "test_assessment", f"{organisation}-{team}", "system:test", organisation=organisation, care_team=team
        )
    return views


def _decision(rule: str, view: Any) -> str:
    if rule in LISTS:
        return "list"
    if rule in REPORTS:
        return "aggregated"
    if rule == GLASS_FORM:
        return "break-glass"
    if rule in STARTS:
        return "a start in the user's teams"
    named = getattr(view, "named", None)
    if named is not None or "<uuid:instance_id>" in rule:
        assert (named or "instance") in KINDS
        return "record"
    if getattr(view, "permission", None) in NOT_PATIENTS:
        return "not a patient's"
    if getattr(view, "permission", None) in OWN:
        return "the patient's own"
    return "undecided"


def test_every_page_has_a_scope_decision(app: Flask) -> None:
    undecided = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("web.")
        and hasattr(app.view_functions[rule.endpoint], "permission")
        and _decision(rule.rule, app.view_functions[rule.endpoint]) == "undecided"
    ]
    assert undecided == []


def test_patient_pages_answer_by_scope(app: Flask) -> None:
    views = _world(app)
    failures = []
    for role in sorted(STAFF_ROLES):  # a patient has no care team (their own pages: test_patient_pages)
        client = _sign_in(app, role, "rx1", ["breast"])
        csrf = _csrf(client)
        for rule in app.url_map.iter_rules():
            view_function = app.view_functions[rule.endpoint]
            if not rule.endpoint.startswith("web.") or _decision(rule.rule, view_function) != "record":
                continue
            permission = view_function.permission
            for place, view in views.items():
                keys = {
                    "instance_id": view.id,
                    "task_id": view.ready_tasks[0]["id"],
                    "item_id": str(uuid.uuid4()),
                    "evaluation_id": str(uuid.uuid4()),
                    "escalation_id": str(uuid.uuid4()),
                    "document": "care-plan",
                    "message": "warning_sign_reported",
                    "action": "suspend",
                }
                url = re.sub(r"<(?:[^:>]+:)?(\w+)>", lambda m, keys=keys: keys[m.group(1)], rule.rule)
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                    data = {"csrf_token": csrf, "version": "99"}
                    response = client.get(url) if method == "GET" else client.post(url, data=data)
                    allowed = role in PERMISSIONS[permission]
                    reached = place == "own team" or (place == "other team" and role == "auditor")
                    if not allowed:
                        ok = response.status_code == 403
                    elif not reached or any(k in rule.rule for k in ("evaluation_id", "item_id", "escalation_id")):
                        # (no such evaluation, care plan item or escalation in this world: not found either way)
                        ok = response.status_code == 404
                    else:
                        ok = response.status_code not in (403, 404) and response.status_code < 500
                    if not ok:
                        failures.append((role, place, method, rule.rule, response.status_code))
    assert failures == []


def test_lists_show_only_the_users_teams(app: Flask) -> None:
    views = _world(app)
    for role, shown in (("clinician", {"own team"}), ("auditor", {"own team", "other team"})):
        client = _sign_in(app, role, "rx1", ["breast"])
        for page in LISTS:
            if role not in PERMISSIONS[app.view_functions[_endpoint(app, page)].permission]:
                continue
            html = client.get(page).get_data(as_text=True)
            for place, view in views.items():
                assert (view.id in html) == (place in shown), (role, page, place)


def _endpoint(app: Flask, path: str) -> str:
    return next(rule.endpoint for rule in app.url_map.iter_rules() if rule.rule == path)


def test_a_clinician_breaks_the_glass_with_a_reason_form(app: Flask) -> None:
    views = _world(app)
    client = _sign_in(app, "clinician", "rx1", ["breast"])
    assert {"clinician"} == BREAK_GLASS_ROLES
    for place in ("other team", "other organisation"):
        refused = client.get(f"/patients/{views[place].id}")
        html = refused.get_data(as_text=True)
        assert refused.status_code == 404 and 'action="/patients/break-glass"' in html
        assert 'name="reason"' in html and "emergency-care" in html
        broken = client.post(
            "/patients/break-glass",
            data={
                "csrf_token": csrf_of(html),
                "instance_id": views[place].id,
                "reason": "cross-cover",
                "note": "covering the lung team's clinic",
            },
        )
        if place == "other team":
            assert broken.status_code == 303 and broken.location == f"/patients/{views[place].id}"
        else:  # never across organisations: not found, as a patient who does not exist
            assert broken.status_code == 404
    # Another team of the organisation opens; another organisation does not.
    opened = client.get(f"/patients/{views['other team'].id}")
    assert opened.status_code == 200 and 'data-test="break-glass"' in opened.get_data(as_text=True)
    assert "lung" in opened.get_data(as_text=True)
    assert 'data-test="break-glass"' not in client.get(f"/patients/{views['own team'].id}").get_data(as_text=True)
    assert client.get(f"/patients/{views['other organisation'].id}").status_code == 404
    # Changes stay closed: break-glass opens reading only.
    csrf = _csrf(client)
    retry = client.post(f"/patients/{views['other team'].id}/retry", data={"csrf_token": csrf, "version": "1"})
    assert retry.status_code == 404
    with _engine(app).sessions() as session:
        rows = session.scalars(select(AccessRecord).where(AccessRecord.break_glass.is_(True))).all()
    declared = {(r.instance_id, r.route, r.break_glass_reason, r.break_glass_note) for r in rows}
    assert (
        views["other team"].id,
        "POST /patients/break-glass",
        "cross-cover",
        "covering the lung team's clinic",
    ) in declared
    assert (views["other team"].id, "GET /patients/<uuid:instance_id>", "cross-cover", None) in declared
    # Nothing is written to another organisation's access log (its auditors would read a row about a
    # patient this clinician can never open).
    assert all(r.instance_id != views["other organisation"].id for r in rows)
    # An unknown reason is refused; other roles are never offered the form, nor may post it.
    assert (
        client.post(
            "/patients/break-glass",
            data={"csrf_token": csrf, "instance_id": views["other team"].id, "reason": "curious"},
        ).status_code
        == 400
    )
    auditor = _sign_in(app, "auditor", "rx1", None)
    hidden = auditor.get(f"/patients/{views['other organisation'].id}")
    assert hidden.status_code == 404 and "break-glass" not in hidden.get_data(as_text=True)
