"""The web app's HTML through Flask's test client: sign-in and sign-out, CSRF refusals, role gating from
the one permission table, the clinicians' pages (work list, task form with errors per field, stale
pages), the patient page, care plan moves, documents, incidents, authors' and auditors' pages."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_formless_tasks import formless_diagram  # tests/ is on sys.path too
from web_helpers import (
    copy_of,
    csrf_of,
    make_token,
    sign_in_with,
)  # tests/web is on sys.path (pytest's rootdir-relative imports)

from api.web.auth import page
from api.web.forms import other_problems
from api.web.i18n import strings
from engine.access import PERMISSIONS, ROLES
from engine.audit import EVENT_TYPES, on_behalf_of

Client = Callable[[str], FlaskClient]
PATHWAY, CARE_PLAN, BAD = "test_assessment", "test_careplan", "test_bad_condition"


def engine(app: Flask) -> Any:
    return app.extensions["carepath"]


def start(app: Flask, pathway: str = PATHWAY, patient: str = "MRN-1001", data: dict[str, Any] | None = None) -> Any:
    return engine(app).instances.start(pathway, patient, "system:test", data)


def text(response: Any) -> str:
    body: str = response.get_data(as_text=True)
    return body


# --- signing in and out ---------------------------------------------------------------------------------


def test_pages_need_a_session_and_a_token_signs_in(app: Flask, tokens: dict[str, str]) -> None:
    client = app.test_client()
    response = client.get("/work-list")
    assert response.status_code == 302 and response.location.startswith("/sign-in?next=/work-list")
    page_html = text(client.get("/sign-in"))
    assert 'name="token"' in page_html and '<label class="nhsuk-label" for="token">' in page_html
    response = client.post(
        "/sign-in", data={"token": tokens["clinician"], "csrf_token": csrf_of(page_html), "next": "/work-list"}
    )
    assert response.status_code == 303 and response.location == "/work-list"
    cookie = response.headers["Set-Cookie"]
    assert "carepath_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the TLS test
    assert tokens["clinician"] not in cookie  # the cookie names the token, never holds its secret
    assert client.get("/work-list").status_code == 200


def test_a_wrong_token_is_refused_and_the_next_page_stays_on_this_site(app: Flask, tokens: dict[str, str]) -> None:
    client = app.test_client()
    csrf = csrf_of(text(client.get("/sign-in")))
    response = client.post("/sign-in", data={"token": "x" * 43, "csrf_token": csrf})
    assert response.status_code == 401 and "unknown, has expired or has been revoked" in text(response)
    assert 'class="nhsuk-error-summary"' in text(response)
    response = client.post(
        "/sign-in", data={"token": tokens["auditor"], "csrf_token": csrf, "next": "//evil.example/steal"}
    )
    assert response.status_code == 303 and response.location == "/"


# Browsers drop tabs and line breaks from a URL ("/<tab>/evil.example" is "//evil.example"); a line break cannot be
# sent in a header at all (it was a 500).
HOSTILE_NEXT = [
    "//evil.example",
    "/\t/evil.example",
    "/\r\n/evil.example",
    "/\n/evil.example",
    "/\\evil.example",
    "https://evil.example",
    "/ /evil.example",
    "/" + "a" * 600,
]


@pytest.mark.parametrize("next_path", HOSTILE_NEXT)
def test_sign_in_and_the_language_switch_never_send_the_browser_off_this_site(
    app: Flask, tokens: dict[str, str], next_path: str
) -> None:
    client = app.test_client()
    csrf = csrf_of(text(client.get("/sign-in")))
    response = client.post("/sign-in", data={"token": tokens["auditor"], "csrf_token": csrf, "next": next_path})
    assert response.status_code == 303 and response.location == "/"
    csrf = csrf_of(text(client.get("/", follow_redirects=True)))  # the session's, since signing in
    response = client.post("/language", data={"csrf_token": csrf, "language": "sv", "next": next_path})
    assert response.status_code == 303 and response.location == "/"
    response = client.post("/language", data={"csrf_token": csrf, "language": "en", "next": "/audit?page=2"})
    assert response.status_code == 303 and response.location == "/audit?page=2"  # a path here is kept


def test_a_sign_in_link_asks_before_signing_in(app: Flask, tokens: dict[str, str], signed_in: Client) -> None:
    """Login CSRF: another site's link to /sign-in?token=<its own token> must not swap a signed-in
    person's session for the sender's. The link shows a button that POSTs the token with the CSRF token."""
    victim = signed_in("clinician")
    with victim.session_transaction() as session:
        own = session["token_id"]
    attacker = make_token(app, "author")
    page = victim.get(f"/sign-in?token={attacker}")
    html = text(page)
    assert page.status_code == 200 and 'data-test="sign-in-link"' in html
    assert f'name="token" value="{attacker}"' in html and 'data-test="signed-in-already"' in html
    assert "You are signed in (Clinician)" in html and page.headers["Referrer-Policy"] == "no-referrer"
    assert victim.get("/work-list").status_code == 200  # still the clinician: nothing changed
    with victim.session_transaction() as session:
        assert session["token_id"] == own
    # Only the page's own form signs in: without the session's CSRF token the POST is refused.
    assert victim.post("/sign-in", data={"token": attacker}).status_code == 400
    with victim.session_transaction() as session:
        assert session["token_id"] == own
    # Swedish, as every page; a hostile value in the link is only ever an escaped form value.
    swedish = text(app.test_client().get("/sign-in?token=%22%3E%3Cscript%3Ex", headers={"Accept-Language": "sv"}))
    assert "Logga in med en länk" in swedish and "<script>x" not in swedish and "&#34;&gt;&lt;script&gt;x" in swedish
    assert sign_in_with(app.test_client(), "x" * 43).status_code == 401


def test_the_token_in_a_sign_in_link_is_kept_out_of_the_request_log() -> None:
    from api.errors import PatientDataFilter

    secret = "S3cr3t-token-value"
    line = f"GET /sign-in?token={secret} HTTP/1.1"
    record = logging.LogRecord(
        "werkzeug", logging.INFO, __file__, 1, '%s - - "%s" %s -', ("127.0.0.1", line, "200"), None
    )
    assert PatientDataFilter().filter(record) and secret not in record.getMessage()


def test_the_session_cookie_is_secure_over_tls(app: Flask, tokens: dict[str, str]) -> None:
    response = sign_in_with(app.test_client(), tokens["clinician"], base_url="https://localhost")
    assert "Secure" in response.headers["Set-Cookie"]


def test_sign_out_ends_the_session(signed_in: Client) -> None:
    client = signed_in("clinician")
    csrf = csrf_of(text(client.get("/work-list")))
    assert client.post("/sign-out", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/work-list").status_code == 302


def test_sign_out_ends_a_copy_of_the_cookie_too(app: Flask, signed_in: Client) -> None:
    """The cookie has no server record: without the ended session's id, a copy taken before sign-out
    would work on until it expired."""
    client = signed_in("clinician")
    thief, another = copy_of(app, client), copy_of(app, client)
    assert thief.get("/work-list").status_code == 200  # the copy works while the session lasts
    csrf = csrf_of(text(client.get("/work-list")))
    assert client.post("/sign-out", data={"csrf_token": csrf}).status_code == 303
    response = thief.get("/work-list")
    assert response.status_code == 302 and response.location.startswith("/sign-in")
    # Signing out a copy of an ended session again changes nothing and fails nothing.
    assert another.post("/sign-out", data={"csrf_token": csrf}).status_code == 303


def test_signing_out_one_browser_leaves_another_session_of_the_token(app: Flask, tokens: dict[str, str]) -> None:
    desk, ward = app.test_client(), app.test_client()
    assert sign_in_with(desk, tokens["clinician"]).status_code == 303
    assert sign_in_with(ward, tokens["clinician"]).status_code == 303
    csrf = csrf_of(text(desk.get("/work-list")))
    assert desk.post("/sign-out", data={"csrf_token": csrf}).status_code == 303
    assert desk.get("/work-list").status_code == 302
    assert ward.get("/work-list").status_code == 200  # its own session: a new id at its sign-in


def test_a_session_from_before_session_ids_is_signed_out(signed_in: Client) -> None:
    client = signed_in("clinician")
    with client.session_transaction() as session:
        del session["sid"]  # as a cookie made before sessions had ids
    response = client.get("/work-list")
    assert response.status_code == 302 and response.location.startswith("/sign-in")


def test_a_token_session_ends_a_shift_after_sign_in_however_often_it_is_used(app: Flask, signed_in: Client) -> None:
    """Flask signs the cookie afresh on every response, so its own expiry slides with each request: a
    browser used every few hours would stay signed in for ever. The shift counts from the sign-in."""
    client = signed_in("clinician")
    for _ in range(7):  # a page every hour for seven hours
        engine(app).clock.advance(timedelta(hours=1))
        assert client.get("/work-list").status_code == 200
    engine(app).clock.advance(timedelta(hours=1) - timedelta(seconds=1))
    assert client.get("/work-list").status_code == 200
    engine(app).clock.advance(timedelta(seconds=1))
    response = client.get("/work-list")
    assert response.status_code == 302 and response.location.startswith("/sign-in")


def test_a_token_session_from_before_its_lifetime_was_kept_is_signed_out(signed_in: Client) -> None:
    client = signed_in("clinician")
    with client.session_transaction() as session:
        del session["until"]  # as a cookie made before sessions kept when they end
    response = client.get("/work-list")
    assert response.status_code == 302 and response.location.startswith("/sign-in")


def test_a_revoked_token_ends_its_sessions(app: Flask, signed_in: Client) -> None:
    client = signed_in("clinician")
    assert client.get("/work-list").status_code == 200
    from engine.access import ApiToken, revoke_token
    from engine.db.session import unit_of_work

    with unit_of_work(engine(app).sessions) as session:
        token = session.query(ApiToken).filter_by(role="clinician").one()
        revoke_token(session, token.id, engine(app).clock)
    assert client.get("/work-list").status_code == 302


def test_an_expired_token_ends_its_sessions(app: Flask) -> None:
    from datetime import timedelta

    from engine.access import create_token
    from engine.db.session import unit_of_work

    with unit_of_work(engine(app).sessions) as session:
        _, secret = create_token(session, "clinician", "a week", engine(app).clock, timedelta(days=7))
    client = app.test_client()
    assert sign_in_with(client, secret).status_code == 303
    assert client.get("/work-list").status_code == 200
    engine(app).clock.advance(timedelta(days=7))
    assert client.get("/work-list").status_code == 302
    assert sign_in_with(app.test_client(), secret).status_code == 401


def test_every_form_post_needs_the_csrf_token(app: Flask, signed_in: Client) -> None:
    view = start(app)
    client = signed_in("clinician")
    task = view.ready_tasks[0]["id"]
    for url, data in [
        ("/sign-out", {}),
        ("/language", {"language": "sv"}),
        (f"/patients/{view.id}/tasks/{task}", {"version": "1", "anxiety": "2", "fatigue": "2"}),
        (f"/patients/{view.id}/retry", {"version": "1"}),
    ]:
        for csrf in (None, "forged"):
            sent = dict(data, **({"csrf_token": csrf} if csrf else {}))
            response = client.post(url, data=sent)
            assert response.status_code == 400, url
            assert "The form has expired" in text(response)
    assert engine(app).instances.get(view.id).version == view.version  # nothing was done
    anonymous = app.test_client()
    assert anonymous.post("/sign-in", data={"token": "x" * 43}).status_code == 400


# --- roles: what is shown is what the permission table allows -------------------------------------------


def _web_routes(app: Flask) -> list[tuple[str, Any]]:
    return [
        (rule.rule, app.view_functions[rule.endpoint])
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("web.") and rule.endpoint != "web.static"
    ]


def test_every_page_names_a_permission_of_the_api_table(app: Flask) -> None:
    open_pages = {"/", "/sign-in", "/sign-in/provider", "/sign-in/callback", "/sign-out", "/language"}
    for rule, view in _web_routes(app):
        if rule in open_pages:
            assert not hasattr(view, "permission"), rule
        else:
            assert getattr(view, "permission", None) in PERMISSIONS, rule
    assert page.__module__ == "api.web.auth"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_exactly_the_pages_its_permissions_allow(app: Flask, signed_in: Client, role: str) -> None:
    view = start(app)
    client = signed_in(role)
    pages = {
        "/work-list": "tasks.read",
        "/patients": "instances.read",
        f"/patients/{view.id}": "instances.read",
        f"/patients/{view.id}/tasks/{view.ready_tasks[0]['id']}": "tasks.read",
        "/pathways": "pathways.read",
        "/pathways/check": "pathways.validate",
        "/audit/trail": "audit.verify",
        f"/patients/{view.id}/evaluations": "evaluations.read",
        f"/patients/{view.id}/documents/care-plan": "documents.read",
    }
    for url, action in pages.items():
        response = client.get(url)
        allowed = role in PERMISSIONS[action]
        assert response.status_code == (200 if allowed else 403), (role, url, response.status_code)
        if not allowed:
            assert "You cannot see this page" in text(response)
    menu = text(client.get("/pathways"))
    for link, action in [
        ("/work-list", "tasks.read"),
        ("/patients", "instances.read"),
        ("/audit/trail", "audit.verify"),
    ]:
        assert (f'href="{link}"' in menu) == (role in PERMISSIONS[action]), (role, link)


def test_a_role_without_the_action_sees_no_button_and_cannot_post(app: Flask, signed_in: Client) -> None:
    view = start(app)
    task = f"/patients/{view.id}/tasks/{view.ready_tasks[0]['id']}"
    for role in ("auditor", "author"):
        client = signed_in(role)
        assert 'data-test="complete"' not in text(client.get(task))
        csrf = csrf_of(text(client.get("/pathways")))
        response = client.post(
            task, data={"csrf_token": csrf, "version": str(view.version), "anxiety": "1", "fatigue": "1"}
        )
        assert response.status_code == 403
    assert engine(app).instances.get(view.id).version == view.version


# --- clinicians -------------------------------------------------------------------------------------------


def test_the_work_list_shows_ready_tasks_and_filters_them(app: Flask, signed_in: Client) -> None:
    first = start(app, patient="MRN-1001")
    start(app, patient="MRN-2002")
    client = signed_in("clinician")
    html = text(client.get("/work-list"))
    assert html.count("Holistic needs assessment") == 2 and "MRN-1001" in html and "MRN-2002" in html
    assert f"/patients/{first.id}/tasks/{first.ready_tasks[0]['id']}" in html
    only = text(client.get("/work-list?patient=MRN-2002&pathway=test_assessment"))
    assert "MRN-2002" in only and "MRN-1001" not in only
    assert "No tasks are ready" in text(client.get("/work-list?pathway=test_careplan"))
    bad = client.get("/work-list?patient=Jane%20Doe")
    assert bad.status_code == 200 and "not a valid identifier" in text(bad) and "Jane Doe" not in text(bad)
    partial = client.get("/work-list?patient=MRN-1001", headers={"HX-Request": "true"})
    assert text(partial).startswith('<div id="work-list-results">') and "<html" not in text(partial)
    # Each list names the pathway by its title, as does the patient's page (its id is for authors).
    for shown in (text(partial), text(client.get("/patients")), text(client.get(f"/patients/{first.id}"))):
        assert "Test assessment pathway" in shown
        assert not re.search(r"(</span>|>)\s*test_assessment\s*<", shown)


def test_the_work_list_puts_the_soonest_deadline_first_and_flags_overdue_ones(
    app: Flask, clock_of: Any, signed_in: Client
) -> None:
    start(app, patient="MRN-0001")  # no timer waiting: last
    start(app, "test_parallel_timer", patient="MRN-0002")  # a timer a week from now
    client = signed_in("clinician")
    html = text(client.get("/work-list"))
    assert html.index("MRN-0002") < html.index("MRN-0001")
    assert "2026-01-22 09:00 UTC" in html and "None waiting" in html and 'data-test="overdue"' not in html
    clock_of(app).advance(timedelta(days=8))  # the worker has not fired it yet: overdue
    html = text(signed_in("clinician").get("/work-list"))  # another shift: signed in again
    assert 'data-test="overdue"' in html and "since 2026-01-22 09:00 UTC" in html


def test_the_task_page_renders_the_form_with_labels(app: Flask, signed_in: Client) -> None:
    view = start(app)
    html = text(signed_in("clinician").get(f"/patients/{view.id}/tasks/{view.ready_tasks[0]['id']}"))
    assert '<label class="nhsuk-label" for="f-anxiety">Worry, fear or anxiety (0-10)</label>' in html
    assert 'id="f-assessed_on" name="assessed_on"\n    type="date"' in html
    assert "Date of assessment (optional)" in html
    assert f'name="version" value="{view.version}"' in html


def test_the_checklist_page_shows_the_24_hour_line_in_the_pages_language(app: Flask, signed_in: Client) -> None:
    """Issue 13 point 5: the needs checklist's page tells the patient to call the 24-hour line now, with the
    directory's number (the bundled example's first section, England's, whatever the page's language: the
    patient's health system gives the numbers, the reader's language the words), also after a refused answer."""
    view = start(app, "test_careplan", data={"age": 54})
    client = signed_in("clinician")
    url = f"/patients/{view.id}/tasks/{view.ready_tasks[0]['id']}"
    english = text(client.get(url))
    notice = english[english.index('data-test="safety-notice"') :]
    assert "call the 24-hour line now on 01632 960100" in notice and "24 hours a day, every day" in notice
    assert 'data-test="example-number"' in notice  # the bundled directory is example data and says so
    assert english.count("call the 24-hour line now") == 1  # not again in the description under it
    assert "<p>Score each concern from 0 (no concern) to 10 (worst).</p>" in english
    swedish = text(client.get(url, headers={"Accept-Language": "sv"}))
    assert "ring rådgivningen dygnet runt direkt på 01632 960100" in swedish and 'lang="sv"' in swedish
    assert "08-465 004 00" not in swedish  # Sweden's line is not this patient's
    refused = text(
        client.post(
            url,
            data={
                "csrf_token": csrf_of(english),
                "version": str(view.version),
                "concerns.worry_fear_anxiety": "eleven",
            },
        )
    )
    assert "call the 24-hour line now on 01632 960100" in refused


def test_completing_a_task_with_errors_names_each_field_and_changes_nothing(app: Flask, signed_in: Client) -> None:
    view = start(app)
    client = signed_in("clinician")
    url = f"/patients/{view.id}/tasks/{view.ready_tasks[0]['id']}"
    csrf = csrf_of(text(client.get(url)))
    response = client.post(
        url, data={"csrf_token": csrf, "version": str(view.version), "anxiety": "abc", "fatigue": "3"}
    )
    assert response.status_code == 422
    html = text(response)
    assert 'class="nhsuk-error-summary"' in html and '<a href="#f-anxiety">' in html
    assert "must be a whole number" in html and 'id="f-anxiety-error"' in html
    assert 'value="abc"' in html  # what was typed is kept for correcting
    response = client.post(url, data={"csrf_token": csrf, "version": str(view.version), "anxiety": "11"})
    html = text(response)
    assert response.status_code == 422
    assert "Worry, fear or anxiety (0-10) must be from 0 to 10" in html and "Enter Tired, exhausted or fatigued" in html
    assert engine(app).instances.get(view.id).version == view.version


def test_completing_a_task_moves_the_pathway_on(app: Flask, signed_in: Client) -> None:
    view = start(app)
    client = signed_in("clinician")
    url = f"/patients/{view.id}/tasks/{view.ready_tasks[0]['id']}"
    csrf = csrf_of(text(client.get(url)))
    response = client.post(
        url,
        data={
            "csrf_token": csrf,
            "version": str(view.version),
            "anxiety": "9",
            "fatigue": "2",
            "assessed_on": "2026-01-15",
        },
    )
    assert response.status_code == 303 and response.location == f"/patients/{view.id}"
    after = engine(app).instances.get(view.id)
    assert after.version > view.version and after.ready_tasks[0]["element"] == "urgent_review"
    # The message rides to the next page in the session cookie, which is signed, not encrypted: it
    # names the instance, and the patient is looked up when the page is drawn.
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    carried = json.dumps(app.session_interface.get_signing_serializer(app).loads(cookie.value))
    assert "_flashes" in carried and view.id in carried and "MRN-1001" not in carried
    html = text(client.get(response.location))
    assert "Holistic needs assessment completed for MRN-1001" in html
    assert "Key worker reviews priority concern" in html


def test_a_stale_page_is_told_it_changed_since_it_was_opened(app: Flask, signed_in: Client) -> None:
    view = start(app, "test_parallel_review")
    tasks = view.ready_tasks
    assert len(tasks) >= 2
    client = signed_in("clinician")
    urls = [f"/patients/{view.id}/tasks/{task['id']}" for task in tasks[:2]]
    csrf = csrf_of(text(client.get(urls[0])))
    data = {"csrf_token": csrf, "version": str(view.version)}
    answers = {"bloods": {"hb": "120"}, "plan": {"finished": "false"}, "offer_support": {}}
    forms = [answers[task["element"]] for task in tasks[:2]]
    assert client.post(urls[0], data={**data, **forms[0]}).status_code == 303
    response = client.post(urls[1], data={**data, **forms[1]})  # opened at the old version
    assert response.status_code == 409
    assert "changed since you opened the page" in text(response) and "Reload the task" in text(response)
    response = client.post(urls[0], data={**data, **forms[0]})  # that one is done now
    assert response.status_code == 409 and "no longer ready" in text(response)


def test_the_patient_page_shows_where_the_patient_is(app: Flask, signed_in: Client) -> None:
    view = start(app)
    html = text(signed_in("clinician").get(f"/patients/{view.id}"))
    assert "Patient MRN-1001" in html and 'data-diagram-url="/patients/' in html
    progress = re.search(r'<script type="application/json" id="progress-data">(.*?)</script>', html, re.S)
    assert progress and '"element": "hna"' in progress.group(1).replace('":"', '": "')
    assert '<li data-element="hna" data-state="ready"><strong>Ready</strong>: Holistic needs assessment' in html
    assert "Timeline" in html and "Started" in html
    diagram = signed_in("clinician").get(f"/patients/{view.id}/diagram.bpmn")
    assert diagram.status_code == 200 and b'id="hna"' in diagram.data


def test_timers_show_their_due_date(app: Flask, signed_in: Client) -> None:
    view = start(app, "test_timer_p1d")
    html = text(signed_in("auditor").get(f"/patients/{view.id}"))
    assert re.search(r'data-state="waiting"><strong>Waiting</strong>: [^<]*, due 2026-01-16 09:00 UTC', html), html


def test_care_plan_items_move_on_with_the_moves_each_allows(app: Flask, signed_in: Client) -> None:
    view = start(app, CARE_PLAN, data={"age": 54})
    engine(app).instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"concerns": {"worry_fear_anxiety": 9}}, "clinician:test"
    )
    client = signed_in("clinician")
    html = text(client.get(f"/patients/{view.id}"))
    item = engine(app).care_plans.get(view.id).items[0]
    assert item["status"] == "proposed"
    assert 'value="agreed"' in html and 'value="declined"' in html and 'value="completed"' not in html
    url = f"/patients/{view.id}/care-plan/{item['id']}"
    response = client.post(url, data={"csrf_token": csrf_of(html), "status": "agreed"}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and text(response).startswith('<div id="care-plan">')
    assert engine(app).care_plans.get(view.id).items[0]["status"] == "agreed"
    response = client.post(url, data={"csrf_token": csrf_of(html), "status": "proposed"})
    assert response.status_code == 409 and "not allowed now" in text(response)
    auditor = text(signed_in("auditor").get(f"/patients/{view.id}"))
    assert "Care plan" in auditor and 'name="status" value="referred"' not in auditor
    # Each item by the name the patient's own plan gives it (the catalogue's), in the page's language.
    catalogue = engine(app).rules.catalogue()
    for language in ("en", "sv"):
        client.post("/language", data={"csrf_token": csrf_of(html), "language": language})
        page = text(client.get(f"/patients/{view.id}"))
        for listed in engine(app).care_plans.get(view.id).items:
            entry = catalogue.interventions[listed["code"]]
            name = (entry.name_sv if language == "sv" else None) or entry.name_en
            assert name.replace("'", "&#39;") in page, (language, listed["code"])


def test_the_care_plan_agreement_asks_for_a_decision_on_each_proposal(app: Flask, signed_in: Client) -> None:
    view = start(app, CARE_PLAN, data={"age": 54})
    view = engine(app).instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"concerns": {"worry_fear_anxiety": 9}}, "clinician:test"
    )
    items = engine(app).care_plans.get(view.id).items
    assert items and view.ready_tasks[0]["element"] == "agree"
    client = signed_in("clinician")
    url = f"/patients/{view.id}/tasks/{view.ready_tasks[0]['id']}"
    html = text(client.get(url))
    for item in items:  # one choice per proposal, labelled with what is proposed
        assert f'name="decisions.{item["id"]}" type="radio" value="agreed"' in html
    data = {
        "csrf_token": csrf_of(html),
        "version": str(view.version),
        **{f"decisions.{item['id']}": "agreed" for item in items[1:]},
    }
    response = client.post(url, data={**data, f"decisions.{items[0]['id']}": "maybe"})
    assert response.status_code == 422  # not one of the options; and what matters is missing
    assert f'href="#f-decisions-{items[0]["id"]}"' in text(response) and 'href="#f-what_matters"' in text(response)
    response = client.post(
        url, data={**data, f"decisions.{items[0]['id']}": "declined", "what_matters": "Walking the dog"}
    )
    assert response.status_code == 303, text(response)[:3000]
    statuses = {i["id"]: i["status"] for i in engine(app).care_plans.get(view.id).items}
    assert statuses[items[0]["id"]] == "declined" and all(statuses[i["id"]] != "proposed" for i in items)


def test_documents_open_in_either_language(app: Flask, signed_in: Client) -> None:
    view = start(app, CARE_PLAN, data={"age": 54})
    client = signed_in("clinician")
    english = client.get(f"/patients/{view.id}/documents/care-plan?lang=en")
    swedish = client.get(f"/patients/{view.id}/documents/care-plan?lang=sv")
    assert english.status_code == swedish.status_code == 200
    assert english.headers["Content-Language"] == "en" and swedish.headers["Content-Language"] == "sv"
    assert 'lang="sv"' in text(swedish)
    assert client.get(f"/patients/{view.id}/documents/end-of-treatment-summary").status_code in (200, 409)


def test_an_incident_is_shown_and_retried(app: Flask, signed_in: Client) -> None:
    view = start(app, BAD)
    after = engine(app).instances.complete_task(view.id, view.ready_tasks[0]["id"], {"pain": 3}, "clinician:test")
    assert after.status == "error"
    client = signed_in("clinician")
    html = text(client.get(f"/patients/{view.id}"))
    assert 'data-test="incident"' in html and "A step failed at element" in html and 'data-test="retry"' in html
    response = client.post(
        f"/patients/{view.id}/retry", data={"csrf_token": csrf_of(html), "version": "1"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 409 and "changed since you opened" in text(response)
    response = client.post(
        f"/patients/{view.id}/retry", data={"csrf_token": csrf_of(html), "version": str(after.version)}
    )
    assert response.status_code == 200
    assert engine(app).instances.get(view.id).version > after.version
    assert 'data-test="retry"' not in text(signed_in("auditor").get(f"/patients/{view.id}"))


def test_a_task_without_a_form_is_confirmed_with_no_data_whatever_the_page_is_sent(
    app: Flask, signed_in: Client
) -> None:
    """The page sends the fields a form declares and no others: a field added to the request (a routing
    flag) is not the task's data, as the engine refuses it through the API."""
    catalog = engine(app).catalog
    [pending] = catalog.deploy_upload(
        {"formless_web.bpmn": formless_diagram("formless_web", "manualTask")}, "author:tok_a for staff:alice"
    )
    catalog.activate("formless_web", pending.version, "author:tok_b for staff:bob")
    view = start(app, "formless_web")
    client = signed_in("clinician")
    url = f"/patients/{view.id}/tasks/{view.ready_tasks[0]['id']}"
    html = text(client.get(url))
    assert "This task has no form" in html and 'name="palliative_route"' not in html
    response = client.post(
        url, data={"csrf_token": csrf_of(html), "version": str(view.version), "palliative_route": "stop"}
    )
    assert response.status_code == 303
    assert engine(app).instances.get(view.id).status == "completed"
    assert "palliative_route" not in engine(app).instances.instance_data(view.id)


def test_the_page_checks_data_for_a_task_without_a_form_as_the_engine_does() -> None:
    problems = other_problems(None, {"palliative_route": "stop"}, [])
    assert [(p.code, p.field) for p in problems] == [("undeclared", "/palliative_route")]
    assert other_problems(None, {}, []) == []


# --- authors and auditors -----------------------------------------------------------------------------------


def test_the_library_lists_pathways_and_versions(app: Flask, signed_in: Client) -> None:
    client = signed_in("author")
    html = text(client.get("/pathways"))
    assert "test_assessment" in html and "Check a diagram" in html
    versions = text(client.get("/pathways/test_assessment"))
    version = re.search(r'/pathways/test_assessment/versions/([0-9a-f]{12})"', versions)
    assert version, versions
    diagram = text(client.get(f"/pathways/test_assessment/versions/{version.group(1)}"))
    # The test pathways have no start data schema: the one thing the gate says of this one.
    assert 'id="diagram-xml"' in diagram and "no start data schema" in diagram
    # The drawing's text alternative: every step in words, each selecting its element on the diagram.
    assert 'data-test="outline"' in diagram and "The pathway in words" in diagram
    assert "every step is also listed in words below it" in diagram
    assert re.search(
        r'<tr class="nhsuk-table__row" data-element="([^"]+)">\s*<td class="nhsuk-table__cell"><button', diagram
    )
    assert client.get("/pathways/no_such/versions/abcd").status_code == 404


@pytest.mark.parametrize(
    ("zone", "winter", "summer"),
    [
        ("UTC", "2026-01-22 09:00 UTC", "2026-07-15 09:00 UTC"),
        ("Europe/London", "2026-01-22 09:00 GMT", "2026-07-15 10:00 BST"),
        ("Europe/Stockholm", "2026-01-22 10:00 CET", "2026-07-15 11:00 CEST"),
    ],
)
def test_times_are_shown_in_the_deployments_time_zone(app: Flask, zone: str, winter: str, summer: str) -> None:
    """A nurse in London reads a due time as her clock shows it, named (GMT, BST), not UTC to convert;
    a date alone is a day and is not moved."""
    from datetime import UTC, datetime

    from api.web.i18n import format_time

    settings = app.extensions["carepath"].settings
    app.extensions["carepath"].settings = replace(
        settings, referral_timeframes=replace(settings.referral_timeframes, time_zone=zone)
    )
    try:
        with app.test_request_context("/"):
            assert format_time("2026-01-22T09:00:00+00:00") == winter
            assert format_time(datetime(2026, 7, 15, 9, 0, tzinfo=UTC)) == summer
            assert format_time("2026-07-15T09:00:00") == summer  # stored without a zone: UTC
            assert format_time("2026-07-15", with_time=False) == "2026-07-15"
            assert format_time(datetime(2026, 7, 15, 23, 30, tzinfo=UTC), with_time=False) == "2026-07-15"
    finally:
        app.extensions["carepath"].settings = settings


FIELDS = '{% from "web/_fields.html" import field with context %}'


def test_a_read_only_field_is_shown_as_the_task_holds_it_and_never_read_back(app: Flask) -> None:
    """The emergency triage's read-only fields (the rules that made it an emergency, the checklist's
    scores): shown as lists, not JSON boxes, and a posted copy of them is not task data."""
    from pathlib import Path

    from flask import render_template_string
    from werkzeug.datastructures import MultiDict

    from api.web.forms import fields_of, parse_fields
    from api.web.i18n import translate

    form = Path(__file__).resolve().parents[2] / "pathways" / "shared" / "forms" / "emergency_triage.json"
    schema = json.loads(form.read_text(encoding="utf-8"))
    schema["properties"]["emergency_reasons"]["default"] = ["fever-on-treatment", "sepsis-signs"]
    schema["properties"]["concerns"]["default"] = {"pain": 9, "breathing_difficulty": 7}
    fields = fields_of(schema)
    assert [f.name for f in fields if f.read_only] == ["emergency_reasons", "concerns"]
    with app.test_request_context("/"):
        html = render_template_string(
            FIELDS + "{% for f in fields %}{{ field(f, {}, {}) }}{% endfor %}",
            fields=fields,
            t=translate,
        )
    reasons = html[html.index('data-test="held-emergency_reasons"') :]
    assert "<li>fever-on-treatment</li><li>sepsis-signs</li>" in reasons.replace("\n", "")
    assert "<li>Breathing difficulty: 7</li><li>Pain: 9</li>" in html
    assert 'name="emergency_reasons"' not in html and 'name="concerns"' not in html
    posted = MultiDict({"emergency_reasons": "none", "concerns": '{"pain": 0}', "triage_rating": "red"})
    data, problems = parse_fields(fields, posted)
    assert "emergency_reasons" not in data and "concerns" not in data and data["triage_rating"] == "red"
    assert not problems
    # Nothing held: said so, not left blank.
    schema["properties"]["concerns"].pop("default")
    with app.test_request_context("/"):
        empty = render_template_string(
            FIELDS + "{{ field(f, {}, {}) }}",
            f=fields_of(schema)[[f.name for f in fields].index("concerns")],
            t=translate,
        )
    assert "Not given" in empty


@pytest.mark.parametrize(
    ("value", "english", "swedish"),
    [
        ("PT4H", "4 hours", "4 timmar"),
        ("PT30M", "30 minutes", "30 minuter"),
        ("PT1H", "1 hour", "1 timme"),
        ("P1DT2H1M", "1 day 2 hours 1 minute", "1 dag 2 timmar 1 minut"),
        ("P3D", "3 days", "3 dagar"),
    ],
)
def test_a_duration_the_task_holds_is_read_in_words(app: Flask, value: str, english: str, swedish: str) -> None:
    from api.web.i18n import format_duration

    for language, words in (("en", english), ("sv", swedish)):
        with app.test_request_context("/", headers={"Accept-Language": language}):
            assert format_duration(value) == words


@pytest.mark.parametrize("value", ["P", "PT", "P1DT", "PT4S", "P1Y", "4 hours", "PT99999H", "pt4h", ""])
def test_text_that_is_not_a_duration_of_days_hours_minutes_is_left_as_it_is(app: Flask, value: str) -> None:
    from api.web.i18n import format_duration

    with app.test_request_context("/"):
        assert format_duration(value) is None


BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # what Chromium sends for a page


def test_an_address_no_page_has_gives_a_browser_a_page_and_a_program_problem_json(
    app: Flask, signed_in: Client
) -> None:
    """A mistyped or stale page address in a browser gets the error page with the navigation back;
    the API, FHIR and any caller that does not ask for HTML keep problem+json."""
    for client, nav in ((app.test_client(), False), (signed_in("clinician"), True)):
        page_404 = client.get("/work-list/nothing-here", headers={"Accept": BROWSER})
        assert page_404.status_code == 404 and page_404.mimetype == "text/html"
        html = text(page_404)
        assert "Page not found" in html and ('href="/patients"' in html) is nav
        for path, accept in (("/nothing-here", "*/*"), ("/nothing-here", "application/json"), ("/v1/nothing", BROWSER)):
            problem = client.get(path, headers={"Accept": accept})
            assert problem.status_code == 404 and problem.mimetype == "application/problem+json", (path, accept)
            assert problem.get_json()["status"] == 404
        assert client.get("/fhir/Nothing", headers={"Accept": BROWSER}).mimetype == "application/problem+json"
    clinician = signed_in("clinician")
    # A page's own 404 stays a page whatever the caller accepts (its address is a page's).
    assert clinician.get("/pathways/no_such/versions/abcd", headers={"Accept": "*/*"}).mimetype == "text/html"
    # A method the page does not take: 405 with the Allow header HTTP requires, as a page or as a problem.
    refused = clinician.delete("/patients", headers={"Accept": BROWSER})
    assert refused.status_code == 405 and refused.mimetype == "text/html"
    assert set(refused.headers["Allow"].split(", ")) >= {"GET"}
    api = clinician.delete("/v1/pathways", headers={"Accept": BROWSER})
    assert api.status_code == 405 and api.mimetype == "application/problem+json" and "GET" in api.headers["Allow"]


def test_checking_a_diagram_marks_its_problems_on_their_elements(app: Flask, signed_in: Client) -> None:
    client = signed_in("author")
    csrf = csrf_of(text(client.get("/pathways/check")))
    with open(TESTS_DIR / "diagrams" / "broken" / "gateway_without_default.bpmn", "rb") as diagram:
        response = client.post(
            "/pathways/check",
            data={"csrf_token": csrf, "diagram": (diagram, "gateway_without_default.bpmn")},
            content_type="multipart/form-data",
        )
    html = text(response)
    assert response.status_code == 200 and 'data-test="problems"' in html
    element = re.search(r'data-select-element="([^"]+)"', html)
    assert element and f'"element": "{element.group(1)}"' in html.replace('":"', '": "')
    assert 'data-test="outline"' in html  # a diagram that does not pass is still read in words
    response = client.post("/pathways/check", data={"csrf_token": csrf}, content_type="multipart/form-data")
    assert response.status_code == 400 and "Choose a .bpmn file" in text(response)
    # Not a diagram at all: its problem, no words, and no promise of them.
    response = client.post(
        "/pathways/check",
        data={"csrf_token": csrf, "diagram": (io.BytesIO(b"<not-closed"), "broken.bpmn")},
        content_type="multipart/form-data",
    )
    html = text(response)
    assert response.status_code == 200 and "not well-formed XML" in html
    assert 'data-test="outline"' not in html and "listed in words" not in html


def test_auditors_explore_evaluations_and_verify_trails(app: Flask, signed_in: Client) -> None:
    view = start(app, CARE_PLAN, data={"age": 54})
    engine(app).instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"concerns": {"worry_fear_anxiety": 9}}, "clinician:test"
    )
    client = signed_in("auditor")
    listing = text(client.get(f"/patients/{view.id}/evaluations"))
    evaluation = re.search(r'href="(/evaluations/[0-9a-f-]+)"', listing)
    assert evaluation, listing
    html = text(client.get(evaluation.group(1)))
    assert "supportive_care" in html and 'data-test="rule-text"' in html and 'data-test="facts"' in html
    # What was proposed, by name, with the rules that proposed it; the concerns scored; the JSON as recorded.
    proposed = html[html.index('data-test="proposed"') : html.index("</table>", html.index('data-test="proposed"'))]
    row = proposed[proposed.index('data-code="psychological-support-referral"') :]
    row = row[: row.index("</tr>")]
    assert "<code>psych-support-urgent</code>" in row and "Referral (urgent)" in row
    concerns = html[html.index('data-test="concerns"') :]
    assert re.search(r"Worry, fear or anxiety</td><td[^>]*>9</td>", concerns[: concerns.index("</table>")])
    assert 'data-test="outcomes"' in html
    # The pathway version the evaluation ran under, and its place in the trail.
    version = engine(app).instances.get(view.id).pathway_version
    traced = html[html.index('data-test="evaluation-pathway"') :]
    assert f"<code>{version[:12]}</code>" in traced[: traced.index("</div>")]
    assert "of the patient&#39;s event trail" in traced[: traced.index("</div>")]
    code = re.search(r'\?why=([a-z0-9_.-]+)"', html)
    assert code, html
    why = text(client.get(f"{evaluation.group(1)}?code={code.group(1)}&ask=why"))
    assert 'data-test="explanation"' in why and "was proposed by" in why
    why_not = text(client.get(f"{evaluation.group(1)}?why_not={code.group(1)}"))
    assert "WAS proposed" in why_not
    trail = text(client.get("/audit/trail"))
    assert 'data-test="trail-ok"' in trail and "MRN-1001" in trail and "Intact" in trail
    # The pathway by its title, as on every other staff page.
    title = engine(app).catalog.titles()[CARE_PLAN]
    assert title != CARE_PLAN and f"{title}</td>" in trail and f"{CARE_PLAN}</td>" not in trail


def test_a_broken_trail_is_named_per_instance(app: Flask, signed_in: Client) -> None:
    view = start(app)
    start(app, patient="MRN-2002")
    from sqlalchemy import text as sql

    with engine(app).db.begin() as connection:
        connection.execute(
            sql("UPDATE instance_events SET actor = 'someone:else' WHERE instance_id = :id"), {"id": view.id}
        )
    html = text(signed_in("auditor").get("/audit/trail"))
    assert "1 trail(s) on this page do NOT verify" in html and "Broken" in html and "Intact" in html


# --- languages ----------------------------------------------------------------------------------------------


def test_both_locales_have_the_same_words() -> None:
    assert set(strings("en")) == set(strings("sv"))
    assert all(isinstance(value, str) and value for value in strings("sv").values())


def test_every_trail_event_has_a_name_on_the_timeline_in_both_languages() -> None:
    for language in ("en", "sv"):
        named = {key.removeprefix("timeline.types.") for key in strings(language) if key.startswith("timeline.types.")}
        assert named == set(EVENT_TYPES), language


def test_the_browser_or_the_user_chooses_the_language(app: Flask, signed_in: Client) -> None:
    client = signed_in("clinician")
    assert "Arbetslista" in text(client.get("/work-list", headers={"Accept-Language": "sv-SE,sv;q=0.9"}))
    english = text(client.get("/work-list"))
    assert '<html lang="en">' in english
    response = client.post("/language", data={"csrf_token": csrf_of(english), "language": "sv", "next": "/work-list"})
    assert response.status_code == 303 and response.location == "/work-list"
    swedish = text(client.get("/work-list", headers={"Accept-Language": "en"}))
    assert '<html lang="sv">' in swedish and "Arbetslista" in swedish and "Logga ut" in swedish


def test_first_user_link_only_on_an_empty_database(app: Flask) -> None:
    from api.web.first_user import first_user_link

    link = first_user_link(engine(app), "http://127.0.0.1:8080")
    assert link is not None and link.startswith("http://127.0.0.1:8080/sign-in?token=")
    assert first_user_link(engine(app), "http://127.0.0.1:8080") is None
    client = app.test_client()
    page = client.get(link.removeprefix("http://127.0.0.1:8080"))  # a page with a button, not a sign-in
    assert page.status_code == 200 and 'data-test="sign-in-link"' in text(page)
    secret = link.split("token=", 1)[1]
    assert sign_in_with(client, secret).status_code == 303 and client.get("/work-list").status_code == 200
    make_token(app, "author")


TESTS_DIR = __import__("pathlib").Path(__file__).resolve().parent.parent


def test_the_migration_dry_run_is_a_report_that_changes_nothing(app: Flask, signed_in: Client) -> None:
    view = start(app)
    assessment = (TESTS_DIR / "pathways" / "assessment.bpmn").read_bytes()
    extra = b'<camunda:formField id="assessed_on" label="Date of assessment" type="date" />'
    new = engine(app).catalog.deploy_upload(
        {"assessment.bpmn": assessment.replace(extra, extra + b'<camunda:formField id="sleep" type="long" />')},
        actor="author:test",
    )[0]
    engine(app).catalog.activate("test_assessment", new.version, "author:staff:second")  # four eyes
    client = signed_in("author")
    assert 'href="/pathways/test_assessment/migration"' in text(client.get("/pathways/test_assessment"))
    html = text(client.get("/pathways/test_assessment/migration"))
    assert "1 would move, 0 refused" in html and view.id[:8] in html and new.version[:12] in html
    assert "MRN-1001" not in html  # authors do not read instances: named by id only
    assert engine(app).instances.get(view.id).pathway_version == view.pathway_version
    assert signed_in("clinician").get("/pathways/test_assessment/migration").status_code == 403


def test_two_versions_are_compared_on_their_diagrams(app: Flask, signed_in: Client) -> None:
    old = engine(app).catalog.versions(PATHWAY)[0].version
    assessment = (TESTS_DIR / "pathways" / "assessment.bpmn").read_bytes()
    new = (
        engine(app)
        .catalog.deploy_upload(
            {"assessment.bpmn": assessment.replace(b'name="Holistic needs assessment"', b'name="Needs assessment"')},
            actor="author:test",
        )[0]
        .version
    )
    client = signed_in("auditor")  # reading versions is every role's
    versions = text(client.get(f"/pathways/{PATHWAY}"))
    link = f"/pathways/{PATHWAY}/diff?from={old[:12]}&amp;to={new[:12]}"
    assert link in versions
    html = text(client.get(link.replace("&amp;", "&")))
    assert 'id="newer-xml"' in html and 'id="older-xml"' in html and 'data-diff-side="older"' in html
    assert "Needs assessment" in html and "Holistic needs assessment" in html
    assert client.get(f"/pathways/{PATHWAY}/diff?from=zz&to={new[:12]}").status_code == 404


def test_an_edited_diagram_is_saved_through_the_deploy_gate(app: Flask, signed_in: Client) -> None:
    old = engine(app).catalog.versions(PATHWAY)[0].version
    client = signed_in("author")
    page_html = text(client.get(f"/pathways/{PATHWAY}/versions/{old[:12]}"))
    assert f'href="/pathways/{PATHWAY}/versions/{old[:12]}/edit"' in page_html
    edit = f"/pathways/{PATHWAY}/versions/{old[:12]}/edit"
    html = text(client.get(edit))
    assert 'data-modeler="true"' in html and "bpmn-modeler.production.min.js" in html
    xml = (TESTS_DIR / "pathways" / "assessment.bpmn").read_text(encoding="utf-8")
    response = client.post(edit, data={"csrf_token": csrf_of(html), "diagram": "<not-bpmn"})
    assert response.status_code == 422 and "The diagram was not saved" in text(response)
    assert engine(app).catalog.versions(PATHWAY)[0].version == old  # nothing deployed
    response = client.post(
        edit,
        data={"csrf_token": csrf_of(html), "diagram": xml.replace('name="Holistic needs assessment"', 'name="HNA"')},
    )
    assert response.status_code == 303
    newest = engine(app).catalog.versions(PATHWAY)[0]
    assert newest.version != old and newest.latest and response.location.endswith(newest.version[:12])
    assert b'name="HNA"' in engine(app).catalog.diagram(PATHWAY, newest.version)
    assert newest.deployed_by.startswith("author:")
    for role in ("clinician", "auditor"):
        viewer = signed_in(role)
        assert viewer.get(edit).status_code == 403
        assert 'data-test="edit"' not in text(viewer.get(f"/pathways/{PATHWAY}/versions/{old[:12]}"))


def test_odd_requests_get_a_page_not_a_server_error(app: Flask, signed_in: Client) -> None:
    view = start(app)
    client = signed_in("clinician")
    url = f"/patients/{view.id}/tasks/{view.ready_tasks[0]['id']}"
    csrf = csrf_of(text(client.get(url)))
    for version in ("\u00b2", "9" * 40, ""):  # a superscript digit, a huge number, nothing: not this version
        response = client.post(url, data={"csrf_token": csrf, "version": version, "anxiety": "1", "fatigue": "1"})
        assert response.status_code == 409 and "changed since you opened" in text(response), version
    response = client.post(url, data={"csrf_token": csrf, "version": "1", "anxiety": "1" * 3_000_000})
    assert response.status_code == 413 and "could not be used" in text(response)
    assert client.get(f"/patients/{view.id}/tasks/00000000-0000-4000-8000-000000000000").status_code == 404
    assert client.get("/patients/00000000-0000-4000-8000-000000000000").status_code == 404
    assert engine(app).instances.get(view.id).version == view.version


def test_the_timeline_shows_the_staff_member_a_system_token_acted_for(app: Flask, signed_in: Client) -> None:
    view = engine(app).instances.start(PATHWAY, "MRN-2001", on_behalf_of("system:tok_ehr", "N-4711"))
    html = text(signed_in("clinician").get(f"/patients/{view.id}"))
    assert 'data-test="on-behalf-of">N-4711<' in html and "system:tok_ehr" in html
    assert "for staff member" in html
