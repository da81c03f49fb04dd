"""Care teams (issue 18, points 2 and 8): the role x scope x endpoint matrix, walked from the app's URL map and
the permission table, so that a route added without a scope decision fails here.

The world: organisation rx1 with teams ``breast`` and ``lung``, organisation rx2 with a team ``breast``; in each
of the three places a patient with a ready task, and a patient whose needs assessment proposed care plan items.
Every role holds a token of rx1 / breast. Each route is asked, by each role, about a record in each scope: its
own team, another team, another organisation, and with break-glass (another team; another organisation). A
record out of scope must answer exactly as a record that does not exist (404, same words); a list must not
show it; a break-glass read by a clinician reaches another team of the organisation, never another one.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from helpers import CARE_PLAN_PATHWAY, PATHWAY, complete
from sqlalchemy import func, select, update

from api.cli import main
from api.openapi import DOCUMENT, FHIR_BASE
from api.scope import BREAK_GLASS_HEADER, BREAK_GLASS_NOTE_HEADER, KINDS
from engine.access import BREAK_GLASS_ROLES, PERMISSIONS, STAFF_ROLES, create_token
from engine.care_teams import BREAK_GLASS_REASONS, COMPOSITION_PREFIX
from engine.db.models import CarePlanItem, DecisionEvaluationRecord, InstanceEvent, PathwayInstance, ReferralEscalation
from engine.db.session import read_only, unit_of_work

HOME, OTHER_TEAM, OTHER_ORG = ("rx1", "breast"), ("rx1", "lung"), ("rx2", "breast")
GLASS = {BREAK_GLASS_HEADER: "emergency-care"}
SCOPES = [
    ("other team", OTHER_TEAM, {}),
    ("other organisation", OTHER_ORG, {}),
    ("break-glass", OTHER_TEAM, GLASS),
    ("break-glass, other organisation", OTHER_ORG, GLASS),
    ("own team", HOME, {}),
]  # last: a write in scope changes the record
# Routes that name no patient's record in their URL. Each is a decision: a list filtered by the caller's
# teams (LISTS), a body naming a patient (BODIES), patients' identity links (LINKS), webhook subscriptions
# (WEBHOOKS), or not a patient's record at all (UNSCOPED: pathways, the sandbox clock; audit routes are scoped
# by organisation, tested below).
LISTS = {
    ("/v1/instances", "GET"): "patient_ref",
    ("/v1/tasks", "GET"): "patient_ref",
    **{
        (f"{FHIR_BASE}/{r}", "GET"): "patient"
        for r in ("CarePlan", "ServiceRequest", "Task", "QuestionnaireResponse", "Composition")
    },
}
BODIES = {("/v1/instances", "POST"), ("/v1/messages", "POST"), (f"{FHIR_BASE}/QuestionnaireResponse", "POST")}
AUDIT = {
    ("/v1/audit/verify", "GET"),
    ("/v1/access-log", "GET"),
    ("/v1/audit/verifications", "POST"),
    ("/v1/audit/verifications/<uuid:job_id>", "GET"),
    # aggregated reports and the COSD export: within the caller's organisation (engine.reports.MeasureQuery)
    ("/v1/reports/measures", "GET"),
    ("/v1/reports/cosd", "GET"),
}
# Linking an OpenID Connect identity to a patient opens that patient's records to the person (/v1/me), so it is
# a reach into them: a token with an organisation links, lists and unlinks only patients with an instance in
# its organisation (any team); any other patient is not found, as an unknown one (engine.patients).
LINKS = {
    ("/v1/patient-identities", "POST"),
    ("/v1/patient-identities", "GET"),
    ("/v1/patient-identities/unlink", "POST"),
}
# Webhook subscriptions are an organisation's (or the deployment's): they receive its instances' events, so an
# admin of one organisation sees, adds, removes and replays its own only; another's is not found, as a missing
# one (engine.webhooks.subscriptions; tested in test_api_webhooks.py and test_webhooks.py).
WEBHOOKS = {
    ("/v1/webhooks/subscriptions", "GET"),
    ("/v1/webhooks/subscriptions", "POST"),
    ("/v1/webhooks/subscriptions/<subscription_id>", "DELETE"),
    ("/v1/webhooks/dead-letters", "GET"),
    ("/v1/webhooks/replay", "POST"),
}
UNSCOPED_PERMISSIONS = {
    "pathways.read",
    "pathways.validate",
    "pathways.deploy",
    "pathways.migrate",
    "sandbox.clock",
    "pathways.activate",
    "rule_sets.deploy",
    "rule_sets.activate",
    "migrations.read",  # authoring: versions and migration requests (no patient references)
}
# A patient's own records without an instance in the URL: scoped to the principal's patient reference
# (engine.patients.require_own), never to care teams (a patient has none). Those naming an instance are
# checked as any instance route is, and then as the patient's own.
OWN = {("/v1/me", "GET"), ("/v1/me/warning-signs", "POST")}
UNSCOPED = {
    (f"{FHIR_BASE}/Questionnaire", "GET"),
    (f"{FHIR_BASE}/Questionnaire/<string(maxlength=64):resource_id>", "GET"),
}  # the checklist itself: no patient
FHIR_KINDS = {
    "CarePlan": "care_plan",
    "ServiceRequest": "care_plan_item",
    "QuestionnaireResponse": "evaluation",
    "Composition": "composition",
}


@dataclass
class Place:
    """One organisation and team's patients: a ready task, and proposed care plan items."""

    organisation: str
    team: str
    instance_id: str = ""
    task_id: str = ""
    patient: str = ""
    plan_instance_id: str = ""
    plan_patient: str = ""
    item_id: str = ""
    evaluation_id: str = ""
    decision_id: str = ""
    escalation_id: str = ""
    ids: set[str] = field(default_factory=set)


@dataclass
class World:
    app: Flask
    client: Any
    places: dict[tuple[str, str], Place]
    tokens: dict[str, str]
    everyone: str  # an unscoped system token (made without an organisation)

    def headers(self, role: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}", **extra}


def scoped_token(app: Flask, role: str, organisation: str | None = None, teams: list[str] | None = None) -> str:
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(
            session, role, f"{role} {organisation}", engine.clock, organisation=organisation, teams=teams
        )
    return secret


def _place(
    app: Flask, client: Any, everyone: dict[str, str], clinician: dict[str, str], organisation: str, team: str
) -> Place:
    engine = app.extensions["carepath"]
    place = Place(organisation, team, patient=f"{organisation}-{team}-A", plan_patient=f"{organisation}-{team}-C")
    where = {"organisation": organisation, "care_team": team}
    started = client.post(
        "/v1/instances", json={"pathway_id": PATHWAY, "patient_ref": place.patient, **where}, headers=everyone
    )
    assert started.status_code == 201 and started.json["care_team"] == team, started.json
    place.instance_id, place.task_id = started.json["id"], started.json["ready_tasks"][0]["id"]
    plan = client.post(
        "/v1/instances",
        json={"pathway_id": CARE_PLAN_PATHWAY, "patient_ref": place.plan_patient, "data": {"age": 54}, **where},
        headers=everyone,
    )
    assert plan.status_code == 201, plan.json
    done = complete(client, lambda role, **h: {**clinician, **h}, plan.json, {"concerns": {"worry_fear_anxiety": 9}})
    assert done.status_code == 200, done.json
    place.plan_instance_id = plan.json["id"]
    care_plan = client.get(f"/v1/instances/{place.plan_instance_id}/care-plan", headers=clinician).json
    item = care_plan["awaiting_decision"][0]
    place.evaluation_id = item["why"]["evaluation_id"]
    with unit_of_work(engine.sessions) as session:  # a referral (a FHIR ServiceRequest) and a decision evaluation
        place.item_id = session.scalars(
            select(CarePlanItem.id).where(
                CarePlanItem.instance_id == place.plan_instance_id, CarePlanItem.kind == "referral"
            )
        ).first()
        place.decision_id = str(uuid.uuid4())
        session.add(
            DecisionEvaluationRecord(
                id=place.decision_id,
                decision_id="distress",
                table_version="0" * 64,
                file="gone.dmn",
                hit_policy="UNIQUE",
                pathway_id=PATHWAY,
                pathway_version=started.json["pathway_version"],
                created_at=engine.clock.now(),
                instance_id=place.instance_id,
                task_id=place.task_id,
                element="triage",
                inputs=[],
                matched=[],
                outputs={},
                misses={},
            )
        )
        place.escalation_id = str(uuid.uuid4())  # a referral not accepted in time (engine.careplan.referrals)
        session.add(
            ReferralEscalation(
                id=place.escalation_id,
                instance_id=place.plan_instance_id,
                item_id=place.item_id,
                status="open",
                assignee=None,
                accept_by=engine.clock.now(),
                opened_at=engine.clock.now(),
            )
        )
    assert place.item_id is not None
    place.ids = {place.instance_id, place.plan_instance_id, place.item_id, place.evaluation_id}
    return place


@pytest.fixture
def world(app: Flask, client: Any) -> World:
    everyone = scoped_token(app, "system")
    clinician = {"Authorization": f"Bearer {scoped_token(app, 'clinician')}"}
    places = {
        where: _place(app, client, {"Authorization": f"Bearer {everyone}"}, clinician, *where)
        for where in (HOME, OTHER_TEAM, OTHER_ORG)
    }
    # Staff roles: a patient has no care team; their own records are walked by test_api_patients.
    tokens = {role: scoped_token(app, role, "rx1", ["breast"]) for role in STAFF_ROLES}
    return World(app, client, places, tokens, everyone)


def _routes(app: Flask) -> list[tuple[str, str, str, str | None]]:
    """(rule, method, permission, named kind) of every API and FHIR route that needs a token."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("web."):
            continue
        view = app.view_functions[rule.endpoint]
        permission = getattr(view, "permission", None)
        if permission is None:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.rule, method, permission, getattr(view, "named", None)))
    return found


def _kind(rule: str, named: str | None) -> str | None:
    """The kind of record a route's URL names (None: none)."""
    if named is not None:
        return named
    return "instance" if "<uuid:instance_id>" in rule else None


def _url(rule: str, kind: str, place: Place, missing: bool = False) -> tuple[str, str]:
    """The route's URL for ``place``'s record (or a record that does not exist), and the key it names."""
    plan = "<uuid:item_id>" in rule or "care-plan" in rule or "/evaluations" in rule or "summary" in rule
    keys = {
        "instance_id": place.plan_instance_id if plan else place.instance_id,
        "task_id": place.task_id,
        "item_id": place.item_id,
        "escalation_id": place.escalation_id,
        "number": "1",  # a phase of care
        "evaluation_id": place.decision_id if kind == "decision_evaluation" else place.evaluation_id,
    }
    if kind in FHIR_KINDS.values():
        keys["resource_id"] = {
            "care_plan": place.plan_instance_id,
            "care_plan_item": place.item_id,
            "evaluation": place.evaluation_id,
            "composition": COMPOSITION_PREFIX + place.plan_instance_id,
        }[kind]
    if kind == "questionnaire_response":
        keys["resource_id"] = place.evaluation_id
    name = KINDS[kind]
    key = keys[name]
    if missing:
        key = keys[name] = (COMPOSITION_PREFIX if kind == "composition" else "") + str(uuid.uuid4())

    def value(match: re.Match[str]) -> str:
        assert match.group(1) in keys, f"{rule}: no scope decision for <{match.group(1)}>"
        return keys[match.group(1)]

    return re.sub(r"<(?:[^:>]+:)?(\w+)>", value, rule), key


def _body(rule: str, method: str, place: Place) -> dict[str, Any] | None:
    if method == "GET":
        return None
    if "referral-escalations" in rule:
        return {"outcome": "chased_service"}
    if rule.endswith("/complete"):
        return {"data": {"anxiety": 1, "fatigue": 1}}
    if rule.endswith("/care-team"):
        return {"care_team": place.team, "reason": "referral"}  # its own team: refused as a conflict when reached
    if "care-plan/items" in rule:
        return {"status": "agreed"}
    if rule.endswith("/data"):
        return {"data": {"age": 60}, "reason": "typo at registration"}
    return {}


def _normal(response: Any, key: str) -> str:
    """A response with its request id and the record's key taken out (to compare a hidden record's with a
    missing one's)."""
    text = response.get_data(as_text=True).replace(response.headers.get("X-Request-ID", "-"), "")
    return f"{response.status_code} " + text.replace(key, "KEY")


def _expected(role: str, permission: str, method: str, scope: str) -> str:
    if role not in PERMISSIONS[permission]:
        return "forbidden"
    glass = scope.startswith("break-glass")
    if glass and role not in BREAK_GLASS_ROLES:
        return "forbidden"
    if glass and method != "GET":
        return "bad-request"
    if scope == "own team" or scope == "break-glass" or (scope == "other team" and role == "auditor"):
        return "reached"
    return "hidden"


def _ask(world: World, method: str, url: str, headers: dict[str, str], body: Any) -> Any:
    if method == "GET":
        return world.client.get(url, headers=headers)
    return world.client.open(url, method=method, json=body, headers=headers)


def test_every_route_has_a_scope_decision(app: Flask) -> None:
    """A route that needs a token names a record (checked by scope), or is a list, a body naming a patient, an
    audit route, or not a patient's record at all. A new route is none of these until someone decides."""
    undecided = []
    for rule, method, permission, named in _routes(app):
        key = (rule, method)
        decided = [
            _kind(rule, named) is not None,
            key in LISTS,
            key in BODIES,
            key in AUDIT,
            key in LINKS,
            key in WEBHOOKS,
            key in UNSCOPED or permission in UNSCOPED_PERMISSIONS,
            key in OWN,
        ]
        if decided.count(True) != 1:
            undecided.append((rule, method, decided))
    assert undecided == []
    assert set(KINDS) >= {_kind(r, n) for r, _, _, n in _routes(app)} - {None}


def test_the_break_glass_headers_are_declared_on_every_read_that_honours_them(app: Flask) -> None:
    """The OpenAPI document declares CarePath-Break-Glass (and its note) on exactly the operations that honour
    it: the reads a clinician may make of a record the URL names, and the lists that name one patient (the
    matrix below shows each of them opening another team's record with it). Not on changes (400) nor on
    operations no clinician may call (403)."""
    honoured = set()
    for rule, method, permission, named in _routes(app):
        if rule.startswith(FHIR_BASE) or method != "GET" or not PERMISSIONS[permission] & BREAK_GLASS_ROLES:
            continue
        if _kind(rule, named) is not None or (rule, method) in LISTS:
            honoured.add(re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule))
    declared: dict[str, set[str]] = {}
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "header" and parameter["name"].startswith("CarePath-Break-Glass"):
                    declared.setdefault(parameter["name"], set()).add(f"{method.upper()} {path}")
                    if parameter["name"] == BREAK_GLASS_HEADER:
                        assert parameter["schema"]["enum"] == list(BREAK_GLASS_REASONS)
    assert honoured >= {
        "/v1/instances",
        "/v1/tasks",
        "/v1/instances/{instance_id}/care-plan",
        "/v1/evaluations/{evaluation_id}",
    }
    assert declared == {
        BREAK_GLASS_HEADER: {f"GET {path}" for path in honoured},
        BREAK_GLASS_NOTE_HEADER: {f"GET {path}" for path in honoured},
    }


def test_records_answer_by_scope(world: World) -> None:
    """Each route naming a record x each role x each scope: hidden records answer as missing ones do."""
    failures = []
    routes = [r for r in _routes(world.app) if _kind(r[0], r[3]) is not None]
    routes.sort(key=lambda r: r[1] != "GET")  # reads first: a write in scope changes the record
    for scope, where, extra in SCOPES:
        place = world.places[where]
        for rule, method, permission, named in routes:
            kind = _kind(rule, named)
            assert kind is not None
            url, key = _url(rule, kind, place)
            missing_url, missing_key = _url(rule, kind, place, missing=True)
            for role in sorted(STAFF_ROLES):
                expected = _expected(role, permission, method, scope)
                headers = world.headers(role, **extra)
                response = _ask(world, method, url, headers, _body(rule, method, place))
                status = response.status_code
                if expected == "forbidden":
                    ok = status == 403
                elif expected == "bad-request":
                    ok = status == 400 and BREAK_GLASS_HEADER in response.get_data(as_text=True)
                else:
                    missing = _ask(world, method, missing_url, headers, _body(rule, method, place))
                    hidden = _normal(response, key) == _normal(missing, missing_key)
                    ok = hidden if expected == "hidden" else (status not in (401, 403) and status < 500 and not hidden)
                if not ok:
                    failures.append(
                        (
                            scope,
                            role,
                            method,
                            rule,
                            expected,
                            status,
                            _normal(response, key)[:200],
                            "" if expected in ("forbidden", "bad-request") else _normal(missing, missing_key)[:200],
                        )
                    )
    assert failures == [], "\n".join(map(str, failures))


def test_lists_show_only_what_the_caller_reaches(world: World) -> None:
    """Lists naming a patient, and the whole lists, per role and scope: filtered in SQL, never after."""
    failures = []
    for (rule, method), parameter in LISTS.items():
        permission = next(p for r, m, p, _ in _routes(world.app) if (r, m) == (rule, method))
        for scope, where, extra in SCOPES:
            place = world.places[where]
            patient = place.patient if rule.endswith(("tasks", "Task")) else place.plan_patient
            for role in sorted(STAFF_ROLES):
                expected = _expected(role, permission, method, scope)
                response = world.client.get(f"{rule}?{parameter}={patient}", headers=world.headers(role, **extra))
                text = response.get_data(as_text=True)
                shown = any(record in text for record in place.ids)
                if expected == "forbidden":
                    ok = response.status_code == 403
                elif expected == "hidden":
                    ok = response.status_code == 200 and not shown
                else:  # no End of Treatment Summary is written yet: that list is empty even in scope
                    ok = response.status_code == 200 and (shown or rule.endswith("Composition"))
                if not ok:
                    failures.append((scope, role, rule, expected, response.status_code, shown))
    assert failures == []
    for role, reached in (("clinician", {HOME}), ("system", {HOME}), ("auditor", {HOME, OTHER_TEAM})):
        listed = world.client.get("/v1/instances?limit=100", headers=world.headers(role)).json
        assert {(i["organisation"], i["care_team"]) for i in listed["items"]} == reached, role
        assert len(listed["items"]) == 2 * len(reached) and listed["next_cursor"] is None
        work = world.client.get("/v1/tasks", headers=world.headers(role)) if role != "auditor" else None
        if work is not None:
            assert {t["instance_id"] for t in work.json["items"]} <= world.places[HOME].ids, role
    # Break-glass opens one patient's records, never a whole list.
    response = world.client.get("/v1/instances", headers=world.headers("clinician", **GLASS))
    assert response.status_code == 400 and "patient_ref" in response.get_data(as_text=True)


def test_pages_are_full_and_counted_within_the_scope(world: World) -> None:
    """Keyset pages of a team's list: every page full, no instance of another team, none twice."""
    everyone = {"Authorization": f"Bearer {world.everyone}"}
    for n in range(5):
        for organisation, team in (HOME, OTHER_TEAM):
            started = world.client.post(
                "/v1/instances",
                json={
                    "pathway_id": PATHWAY,
                    "patient_ref": f"P-{team}-{n}",
                    "organisation": organisation,
                    "care_team": team,
                },
                headers=everyone,
            )
            assert started.status_code == 201
    seen: list[str] = []
    cursor = ""
    while True:
        page = world.client.get(f"/v1/instances?limit=2{cursor}", headers=world.headers("clinician")).json
        assert all(i["care_team"] == "breast" and i["organisation"] == "rx1" for i in page["items"])
        seen += [i["id"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        assert len(page["items"]) == 2
        cursor = f"&cursor={page['next_cursor']}"
    assert len(seen) == len(set(seen)) == 2 + 5


def test_body_routes_reach_only_the_callers_patients(world: World) -> None:
    """A start names its team (a system token of another team may not); a message reaches only instances in scope."""
    system = world.headers("system")
    for where, status in ((HOME, 201), (OTHER_TEAM, 403), (OTHER_ORG, 403)):
        response = world.client.post(
            "/v1/instances",
            headers=system,
            json={
                "pathway_id": PATHWAY,
                "patient_ref": f"NEW-{where[0]}-{where[1]}",
                "organisation": where[0],
                "care_team": where[1],
            },
        )
        assert response.status_code == status, response.json
    # Without a team, a token with one team starts in it.
    placed = world.client.post("/v1/instances", headers=system, json={"pathway_id": PATHWAY, "patient_ref": "NEW-2"})
    assert (placed.json["organisation"], placed.json["care_team"]) == HOME
    # A message to another team's patient finds nothing to deliver, as for a patient who does not exist:
    # from the team's integrating system and from its clinicians (who record what they learn first) alike.
    for sender, where in itertools.product((system, world.headers("clinician")), (OTHER_TEAM, OTHER_ORG)):
        hidden = world.client.post(
            "/v1/messages",
            headers=sender,
            json={"name": "warning_sign_reported", "instance_id": world.places[where].instance_id},
        )
        missing = world.client.post(
            "/v1/messages", headers=sender, json={"name": "warning_sign_reported", "instance_id": str(uuid.uuid4())}
        )
        assert hidden.status_code == 409
        assert (hidden.status_code, hidden.json["detail"]) == (missing.status_code, missing.json["detail"])


def test_a_start_colliding_with_a_hidden_instance_does_not_locate_it(world: World) -> None:
    """One running instance per patient and pathway holds everywhere (the 409), but the running instance is
    named (Location) only to a caller who reaches it: another team's or organisation's stays unfound."""
    system = world.headers("system")
    for where, located in ((HOME, True), (OTHER_TEAM, False), (OTHER_ORG, False)):
        place = world.places[where]
        response = world.client.post(
            "/v1/instances", headers=system, json={"pathway_id": PATHWAY, "patient_ref": place.patient}
        )
        assert response.json["type"].endswith("/instance-exists"), (where, response.json)
        assert response.status_code == 409
        assert response.headers.get("Location") == (f"/v1/instances/{place.instance_id}" if located else None)
        assert place.instance_id not in response.get_data(as_text=True)
    # An unscoped token reaches every instance, so it is told where the running one is.
    everyone = world.client.post(
        "/v1/instances",
        headers={"Authorization": f"Bearer {world.everyone}"},
        json={
            "pathway_id": PATHWAY,
            "patient_ref": world.places[OTHER_ORG].patient,
            "organisation": "rx1",
            "care_team": "breast",
        },
    )
    assert everyone.status_code == 409
    assert everyone.headers["Location"] == f"/v1/instances/{world.places[OTHER_ORG].instance_id}"


def test_identities_are_linked_only_to_the_callers_organisations_patients(world: World) -> None:
    """An admin or system token of rx1 links, lists and unlinks identities of rx1's patients (any team); rx2's
    patient answers as a patient unknown to it (404, same words), and its links are neither listed nor removed.
    A token without an organisation reaches every patient."""
    issuer = "https://login.example.org"
    everyone = {"Authorization": f"Bearer {world.everyone}"}
    theirs = world.places[OTHER_ORG].patient
    made = world.client.post(
        "/v1/patient-identities", headers=everyone, json={"issuer": issuer, "subject": "rx2-own", "patient_ref": theirs}
    )
    assert made.status_code == 201, made.json
    for role in ("admin", "system"):
        headers = world.headers(role)
        for where in (HOME, OTHER_TEAM):
            patient = world.places[where].patient
            linked = world.client.post(
                "/v1/patient-identities",
                headers=headers,
                json={"issuer": issuer, "subject": f"{role}-{where[1]}", "patient_ref": patient},
            )
            assert linked.status_code == 201, (role, where, linked.json)
        hidden = world.client.post(
            "/v1/patient-identities", headers=headers, json={"issuer": issuer, "subject": "x", "patient_ref": theirs}
        )
        unknown = world.client.post(
            "/v1/patient-identities",
            headers=headers,
            json={"issuer": issuer, "subject": "x", "patient_ref": "NOBODY-1"},
        )
        assert hidden.status_code == unknown.status_code == 404
        assert _normal(hidden, theirs) == _normal(unknown, "NOBODY-1")
        listed = world.client.get("/v1/patient-identities", headers=headers).json["items"]
        assert theirs not in {item["patient_ref"] for item in listed}
        assert {item["subject"] for item in listed} >= {f"{role}-breast", f"{role}-lung"}
        assert world.client.get(f"/v1/patient-identities?patient_ref={theirs}", headers=headers).json["items"] == []
        refused = world.client.post(
            "/v1/patient-identities/unlink", headers=headers, json={"issuer": issuer, "subject": "rx2-own"}
        )
        never = world.client.post(
            "/v1/patient-identities/unlink", headers=headers, json={"issuer": issuer, "subject": "never-linked"}
        )
        assert refused.status_code == never.status_code == 404
        assert _normal(refused, "") == _normal(never, "")
    rx2 = world.client.get(f"/v1/patient-identities?patient_ref={theirs}", headers=everyone).json["items"]
    assert [item["subject"] for item in rx2] == ["rx2-own"]  # still linked
    gone = world.client.post(
        "/v1/patient-identities/unlink",
        headers=world.headers("admin"),
        json={"issuer": issuer, "subject": "admin-lung"},
    )
    assert gone.status_code == 200 and gone.json["patient_ref"] == world.places[OTHER_TEAM].patient


def test_tokens_without_teams_follow_the_documented_rule(world: World) -> None:
    """The rule for principals without team scoping: a token made without an organisation reaches every
    organisation (development, tests, tokens from before); one made with an organisation and no team
    reaches all its teams; an auditor always reaches their organisation."""
    org_wide = scoped_token(world.app, "clinician", "rx1")
    listed = world.client.get("/v1/instances?limit=100", headers={"Authorization": f"Bearer {org_wide}"}).json
    assert {(i["organisation"], i["care_team"]) for i in listed["items"]} == {HOME, OTHER_TEAM}
    everywhere = world.client.get("/v1/instances?limit=100", headers={"Authorization": f"Bearer {world.everyone}"})
    assert len(everywhere.json["items"]) == 6
    assert json.dumps(everywhere.json).count('"rx2"') == 2


# --- moving an instance to another team ---------------------------------------------------------------------


def test_a_clinician_of_the_team_moves_the_patient_with_a_reason(world: World) -> None:
    place = world.places[HOME]
    url = f"/v1/instances/{place.instance_id}"
    lung = {"Authorization": f"Bearer {scoped_token(world.app, 'clinician', 'rx1', ['lung'])}"}
    assert world.client.get(url, headers=lung).status_code == 404  # not theirs yet
    # Only a clinician of the team looking after the patient (or the system recording a transfer) moves them:
    # the other team's clinician cannot take a patient (the instance is not found for them).
    taken = world.client.put(f"{url}/care-team", json={"care_team": "lung", "reason": "referral"}, headers=lung)
    assert taken.status_code == 404
    for body, named in (
        ({"care_team": "lung", "reason": "because I said so"}, "/reason"),
        ({"care_team": "Dr Smith's team", "reason": "referral"}, "/care_team"),
        ({"care_team": "lung"}, "reason"),
    ):
        refused = world.client.put(f"{url}/care-team", json=body, headers=world.headers("clinician"))
        assert refused.status_code in (400, 422) and named in json.dumps(refused.json), refused.json
    moved = world.client.put(
        f"{url}/care-team",
        json={"care_team": "lung", "reason": "mdt-decision"},
        headers=world.headers("clinician", **{"If-Match": '"1"'}),
    )
    assert moved.status_code == 200, moved.json
    assert (moved.json["organisation"], moved.json["care_team"], moved.json["version"]) == ("rx1", "lung", 2)
    # The old team no longer sees the patient; the new one does.
    assert world.client.get(url, headers=world.headers("clinician")).status_code == 404
    assert world.client.get(url, headers=lung).json["care_team"] == "lung"
    # The trail: who, from which team to which, why -- identifiers and a code, nothing about the patient.
    events = world.client.get(f"{url}/events", headers=world.headers("auditor")).json["items"]
    assert events[-1]["type"] == "care_team_changed"
    assert events[-1]["payload"] == {"from": "breast", "to": "lung", "reason": "mdt-decision"}
    assert events[-1]["actor"].startswith("clinician:tok_")
    verified = world.client.get(f"/v1/audit/verify?instance_id={place.instance_id}", headers=world.headers("auditor"))
    assert verified.json == {"verified": True, "problems": []}
    # Moving to the team it is in is a conflict; a stale version is refused.
    again = world.client.put(f"{url}/care-team", json={"care_team": "lung", "reason": "referral"}, headers=lung)
    assert again.status_code == 409
    stale = world.client.put(
        f"{url}/care-team", json={"care_team": "breast", "reason": "correction"}, headers={**lung, "If-Match": '"1"'}
    )
    assert stale.status_code == 412


# --- break-glass ---------------------------------------------------------------------------------------------


def test_a_break_glass_read_is_allowed_recorded_and_reported(
    world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    place = world.places[OTHER_TEAM]
    url = f"/v1/instances/{place.plan_instance_id}/care-plan"
    note = "Patient collapsed in clinic 4; their team is off site"
    assert world.client.get(url, headers=world.headers("clinician")).status_code == 404
    with caplog.at_level(logging.DEBUG):
        read = world.client.get(url, headers=world.headers("clinician", **GLASS, **{"CarePath-Break-Glass-Note": note}))
        assert read.status_code == 200
        listed = world.client.get(
            f"/v1/instances?patient_ref={place.plan_patient}", headers=world.headers("clinician", **GLASS)
        )
        assert [i["id"] for i in listed.json["items"]] == [place.plan_instance_id]
    assert note not in caplog.text  # the note is kept in the access log table only
    # An unknown reason, a write, another role: refused, whatever the record.
    assert (
        world.client.get(url, headers=world.headers("clinician", **{BREAK_GLASS_HEADER: "curiosity"})).status_code
        == 400
    )
    assert world.client.get(url, headers=world.headers("system", **GLASS)).status_code == 403
    assert world.client.get(url, headers=world.headers("auditor", **GLASS)).status_code == 403
    # Auditors see break-glass reads, with the reason and note; ordinary reads are not among them.
    report = world.client.get("/v1/access-log?break_glass=true", headers=world.headers("auditor")).json["items"]
    assert {(r["route"], r["status"], r["break_glass_reason"], r["break_glass_note"]) for r in report} == {
        ("GET /v1/instances/<uuid:instance_id>/care-plan", 200, "emergency-care", note),
        ("GET /v1/instances", 200, "emergency-care", None),
    }
    assert all(r["break_glass"] and r["instance_id"] == place.plan_instance_id for r in report)
    assert all(r["actor"].startswith("clinician:") for r in report)
    ordinary = world.client.get("/v1/access-log?break_glass=false", headers=world.headers("auditor")).json["items"]
    assert ordinary and not any(r["break_glass"] for r in ordinary)
    # ... and at the command line.
    monkeypatch.setenv("CAREPATH_DATABASE_URL", world.app.config["DATABASE_URL"])
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(Path(__file__).resolve().parent.parent / "pathways"))
    printed = CliRunner().invoke(main, ["audit", "reads", "--break-glass"])
    assert printed.exit_code == 0, printed.output
    lines = [json.loads(line) for line in printed.stdout.splitlines()]
    assert len(lines) == 2 and {line["break_glass_reason"] for line in lines} == {"emergency-care"}
    assert "2 access record(s)" in printed.stderr


def test_break_glass_never_crosses_organisations(world: World) -> None:
    place = world.places[OTHER_ORG]
    hidden = world.client.get(f"/v1/instances/{place.instance_id}", headers=world.headers("clinician", **GLASS))
    assert hidden.status_code == 404
    listed = world.client.get(f"/v1/instances?patient_ref={place.patient}", headers=world.headers("clinician", **GLASS))
    assert listed.json["items"] == []


# --- auditors ------------------------------------------------------------------------------------------------


def test_auditors_see_their_organisations_access_log_and_trails_only(world: World) -> None:
    for where in (HOME, OTHER_ORG):
        clinician = {"Authorization": f"Bearer {scoped_token(world.app, 'clinician', where[0], [where[1]])}"}
        read = world.client.get(f"/v1/instances/{world.places[where].instance_id}", headers=clinician)
        assert read.status_code == 200
    ours = world.client.get("/v1/access-log?limit=200", headers=world.headers("auditor")).json["items"]
    assert ours and {r["organisation"] for r in ours} == {"rx1"}
    everyone = scoped_token(world.app, "auditor")  # an auditor of every organisation (no organisation)
    every = world.client.get("/v1/access-log?limit=200", headers={"Authorization": f"Bearer {everyone}"}).json
    assert {r["organisation"] for r in every["items"]} >= {"rx1", "rx2"}
    # Another organisation's trail: not found, and not verified by an auditor of rx1 (as a missing instance).
    other = world.places[OTHER_ORG].instance_id
    assert world.client.get(f"/v1/instances/{other}/events", headers=world.headers("auditor")).status_code == 404
    engine = world.app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:  # tamper with rx2's trail
        session.execute(update(InstanceEvent).where(InstanceEvent.instance_id == other).values(actor="someone:else"))
    ours_verified = world.client.get(f"/v1/audit/verify?instance_id={other}", headers=world.headers("auditor"))
    assert ours_verified.json == {"verified": True, "problems": []}
    theirs = world.client.get(f"/v1/audit/verify?instance_id={other}", headers={"Authorization": f"Bearer {everyone}"})
    assert theirs.json["verified"] is False
    # A verification job: the rx1 auditor's covers rx1's instances only, its counts included.
    job = world.client.post("/v1/audit/verifications", headers=world.headers("auditor"))
    assert job.status_code == 202 and job.json["organisation"] == "rx1"
    every_job = world.client.post("/v1/audit/verifications", headers={"Authorization": f"Bearer {everyone}"})
    assert every_job.json["organisation"] is None
    world.app.extensions["carepath.jobs"].wait()
    shown = world.client.get(job.headers["Location"], headers=world.headers("auditor")).json
    assert shown["problems"] == [] and shown["verified"] is True
    with read_only(engine.sessions) as session:
        counts = dict(
            session.execute(
                select(PathwayInstance.organisation, func.count()).group_by(PathwayInstance.organisation)
            ).all()
        )
    assert counts["rx2"] > 0 and shown["instances_total"] == shown["instances_checked"] == counts["rx1"]
    # The job of every trail: read by the auditor of every organisation (who reads rx1's job too), never
    # by the auditor of rx1 -- the same 404 as a job that does not exist.
    full = world.client.get(every_job.headers["Location"], headers={"Authorization": f"Bearer {everyone}"}).json
    assert full["verified"] is False and {p["instance_id"] for p in full["problems"]} == {other}
    assert full["instances_total"] == sum(counts.values())
    assert world.client.get(job.headers["Location"], headers={"Authorization": f"Bearer {everyone}"}).json == shown
    hidden = world.client.get(every_job.headers["Location"], headers=world.headers("auditor"))
    missing = world.client.get(f"/v1/audit/verifications/{uuid.uuid4()}", headers=world.headers("auditor"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json["detail"].replace(every_job.json["id"], "x") == missing.json["detail"].replace(
        missing.request.path.rsplit("/", 1)[1], "x"
    )
    rx2_auditor = {"Authorization": f"Bearer {scoped_token(world.app, 'auditor', 'rx2')}"}
    assert world.client.get(job.headers["Location"], headers=rx2_auditor).status_code == 404
