"""The web app's sign-in at the organisation's OpenID Connect provider (issue 18, point 1): the
authorization code flow with PKCE, state and nonce against a tiny local provider, a session cookie as
with API tokens, and API-token sign-in when no provider is configured."""

from __future__ import annotations

import html as html_lib
import http.client
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from oidc_provider import AUDIENCE, CLIENT_ID, FakeProvider, serve
from sqlalchemy import select
from web_helpers import copy_of, csrf_of, make_token, sign_in_with

from api import create_app
from engine import ManualClock
from engine.db.models import InstanceEvent
from engine.db.session import unit_of_work
from engine.identity import pkce_challenge
from engine.patients import link_identity, unlink_identity

TESTS = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)  # as tests/web/conftest.py's apps start


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with serve(FakeProvider(), START) as provider:
        yield provider


def web_app(template: Path, folder: Path, **config: Any) -> Flask:
    shutil.copyfile(template, folder / "web.sqlite3")
    return create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{folder / 'web.sqlite3'}",
            "PATHWAYS_DIR": TESTS / "pathways",
            "RULES_DIR": TESTS.parent / "rules",
            "CLOCK": ManualClock(START),
            "SECRET_KEY": "test-secret-key",
            **config,
        }
    )


@contextmanager
def provider_app(template: Path, folder: Path, fake: FakeProvider, **config: Any) -> Iterator[Flask]:
    """The web app signing people in at ``fake``, with ``config`` over its settings; closed after."""
    app = web_app(
        template,
        folder,
        OIDC_ISSUER=fake.issuer,
        OIDC_AUDIENCE=AUDIENCE,
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_STAFF_ID_CLAIM="preferred_username",
        **config,
    )
    try:
        yield app
    finally:
        app.extensions["carepath"].close()


@pytest.fixture
def oidc_app(web_template: Path, tmp_path: Path, fake: FakeProvider) -> Iterator[Flask]:
    with provider_app(web_template, tmp_path, fake) as app:
        yield app


def at_provider(url: str) -> str:
    """What a browser does at the (fake) provider: follow its address, get redirected back; the Location."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=5)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}")
        response = connection.getresponse()
        assert response.status == 302, response.read()
        return str(response.getheader("Location"))
    finally:
        connection.close()


def back_from_provider(client: FlaskClient, next_path: str = "") -> tuple[Any, dict[str, str]]:
    """Sign in through the provider; the callback's response and the authorization request's parameters."""
    started = client.get("/sign-in/provider" + (f"?next={next_path}" if next_path else ""))
    assert started.status_code == 303, started.get_data(as_text=True)[:500]
    asked = {k: v[0] for k, v in parse_qs(urlsplit(started.location).query).items()}
    back = urlsplit(at_provider(started.location))
    return client.get(f"{back.path}?{back.query}"), asked


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def test_the_sign_in_page_offers_the_provider(oidc_app: Flask) -> None:
    html = text(oidc_app.test_client().get("/sign-in?next=/work-list"))
    assert 'data-test="provider-sign-in"' in html and "Sign in with your organisation account" in html
    assert 'href="/sign-in/provider?next=/work-list"' in html
    assert 'name="token"' in html  # systems' API tokens still sign in


def test_a_person_signs_in_at_the_provider_and_acts_in_their_role(oidc_app: Flask, fake: FakeProvider) -> None:
    client = oidc_app.test_client()
    response, asked = back_from_provider(client, "/work-list")
    assert response.status_code == 303 and response.location == "/work-list"
    # The authorization request: the code flow, with PKCE (S256), state and nonce, to the configured client.
    assert asked["response_type"] == "code" and asked["client_id"] == CLIENT_ID
    assert asked["code_challenge_method"] == "S256" and "openid" in asked["scope"].split()
    assert asked["redirect_uri"] == "http://localhost/sign-in/callback"
    assert len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32 and asked["state"] != asked["nonce"]
    exchanged = fake.token_requests[-1]
    assert exchanged["grant_type"] == "authorization_code" and exchanged["redirect_uri"] == asked["redirect_uri"]
    assert pkce_challenge(exchanged["code_verifier"]) == asked["code_challenge"]
    assert exchanged["code_verifier"] not in str(asked)
    # A session cookie as with API tokens, naming the person; the mapped role decides what they see.
    html = text(client.get("/work-list"))
    assert "j.smith" in html
    assert client.get("/audit/trail").status_code == 403


def test_the_trail_names_the_person_who_completed_a_task(oidc_app: Flask) -> None:
    engine = oidc_app.extensions["carepath"]
    view = engine.instances.start("test_assessment", "MRN-1001", "system:test")
    client = oidc_app.test_client()
    back_from_provider(client)
    task = f"/patients/{view.id}/tasks/{view.ready_tasks[0]['id']}"
    csrf = csrf_of(text(client.get(task)))
    response = client.post(
        task, data={"csrf_token": csrf, "version": str(view.version), "anxiety": "2", "fatigue": "3"}
    )
    assert response.status_code == 303, text(response)[:500]
    with engine.sessions() as session:
        actors = session.scalars(
            select(InstanceEvent.actor).where(InstanceEvent.instance_id == view.id).order_by(InstanceEvent.seq)
        ).all()
    assert actors == ["system:test", "clinician:staff:j.smith"]


def test_a_callback_with_another_state_is_refused_and_used_once(oidc_app: Flask) -> None:
    client = oidc_app.test_client()
    started = client.get("/sign-in/provider")
    back = urlsplit(at_provider(started.location))
    query = parse_qs(back.query)
    forged = client.get(f"/sign-in/callback?code={query['code'][0]}&state=forged-state-from-another-site")
    assert forged.status_code == 401 and "did not let you in" in text(forged)
    # The sign-in is spent: even the right state does not work after a refused attempt.
    replay = client.get(f"{back.path}?{back.query}")
    assert replay.status_code == 401
    assert client.get("/work-list").status_code == 302


def test_a_callback_in_another_browser_is_refused(oidc_app: Flask) -> None:
    started = oidc_app.test_client().get("/sign-in/provider")
    back = urlsplit(at_provider(started.location))
    assert oidc_app.test_client().get(f"{back.path}?{back.query}").status_code == 401


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"nonce": "a-replayed-id-token"}, "nonce"),
        ({"roles": None}, "no role"),
        ({"audience": AUDIENCE}, "an access token's audience, not the web client's"),
        ({"iss": "https://evil.example"}, "another issuer"),
    ],
)
def test_an_id_token_that_fails_a_check_signs_nobody_in(
    oidc_app: Flask, fake: FakeProvider, claims: dict[str, Any], why: str
) -> None:
    fake.id_token_claims = claims
    client = oidc_app.test_client()
    response, _ = back_from_provider(client)
    assert response.status_code == 401, why
    assert client.get("/work-list").status_code == 302, why


def test_an_error_from_the_provider_is_shown(oidc_app: Flask) -> None:
    client = oidc_app.test_client()
    client.get("/sign-in/provider")
    response = client.get("/sign-in/callback?error=access_denied&state=x")
    assert response.status_code == 401 and 'class="nhsuk-error-summary"' in text(response)


def test_a_code_the_provider_refuses_says_the_service_failed(oidc_app: Flask) -> None:
    client = oidc_app.test_client()
    started = client.get("/sign-in/provider")
    state = parse_qs(urlsplit(started.location).query)["state"][0]
    response = client.get(f"/sign-in/callback?code=never-issued&state={state}")
    assert response.status_code == 502 and "cannot be reached" in text(response)


def test_the_session_ends_after_its_lifetime_from_sign_in(oidc_app: Flask) -> None:
    client = oidc_app.test_client()
    back_from_provider(client)
    clock = oidc_app.extensions["carepath"].clock
    clock.advance(timedelta(hours=8) - timedelta(seconds=1))
    assert client.get("/work-list").status_code == 200
    clock.advance(timedelta(seconds=1))
    assert client.get("/work-list").status_code == 302


def test_a_sign_in_left_at_the_provider_too_long_is_refused(oidc_app: Flask) -> None:
    client = oidc_app.test_client()
    started = client.get("/sign-in/provider")
    back = urlsplit(at_provider(started.location))
    oidc_app.extensions["carepath"].clock.advance(timedelta(minutes=11))
    assert client.get(f"{back.path}?{back.query}").status_code == 401


def test_without_a_provider_sign_in_is_by_api_token(web_template: Path, tmp_path: Path) -> None:
    app = web_app(web_template, tmp_path)
    try:
        client = app.test_client()
        html = text(client.get("/sign-in"))
        assert 'data-test="provider-sign-in"' not in html and 'name="token"' in html
        assert client.get("/sign-in/provider").status_code == 404
        assert client.get("/sign-in/callback?code=x&state=y").status_code == 404
        assert sign_in_with(client, make_token(app, "clinician")).status_code == 303
    finally:
        app.extensions["carepath"].close()


def test_an_api_only_provider_leaves_web_sign_in_to_tokens(
    web_template: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    """A provider without a web client id serves the API's bearer tokens only."""
    app = web_app(web_template, tmp_path, OIDC_ISSUER=fake.issuer, OIDC_AUDIENCE=AUDIENCE)
    try:
        assert 'data-test="provider-sign-in"' not in text(app.test_client().get("/sign-in"))
        assert app.test_client().get("/sign-in/provider").status_code == 404
    finally:
        app.extensions["carepath"].close()


def test_an_unreachable_provider_is_said_in_words(web_template: Path, tmp_path: Path) -> None:
    with serve(FakeProvider(), START) as gone:
        issuer = gone.issuer
    app = web_app(web_template, tmp_path, OIDC_ISSUER=issuer, OIDC_AUDIENCE=AUDIENCE, OIDC_CLIENT_ID=CLIENT_ID)
    try:
        response = app.test_client().get("/sign-in/provider?next=/work-list")
        assert response.status_code == 502 and "cannot be reached" in text(response)
        assert 'name="token"' in text(response)  # an API token still signs in meanwhile
    finally:
        app.extensions["carepath"].close()


def test_a_patient_signs_in_at_the_provider_and_lands_on_their_own_plan(oidc_app: Flask, fake: FakeProvider) -> None:
    """A linked subject (issue 18.2): their own plan, never the work list, and only theirs."""
    engine = oidc_app.extensions["carepath"]
    own = engine.instances.start("test_assessment", "MRN-1001", "system:test")
    other = engine.instances.start("test_assessment", "MRN-2002", "system:test")
    with unit_of_work(engine.sessions) as session:
        link_identity(session, fake.issuer, "p-77", "MRN-1001", "admin:test", engine.clock)
    fake.user = {"sub": "p-77", "preferred_username": "p-77", "roles": []}  # no staff role: a patient
    client = oidc_app.test_client()
    response, _ = back_from_provider(client)
    assert response.status_code == 303
    home = client.get(response.location)
    assert home.status_code == 302 and home.location == "/my"
    assert "<h1>My care plan</h1>" in text(client.get(f"/my/plans/{own.id}"))
    assert client.get(f"/my/plans/{other.id}").status_code == 404
    assert client.get("/work-list").status_code == 403


def _linked_patient_signed_in(app: Flask, fake: FakeProvider) -> FlaskClient:
    """A browser signed in through the provider as p-77, the identity linked to patient MRN-1001."""
    engine = app.extensions["carepath"]
    engine.instances.start("test_assessment", "MRN-1001", "system:test")
    with unit_of_work(engine.sessions) as session:
        link_identity(session, fake.issuer, "p-77", "MRN-1001", "admin:test", engine.clock)
    fake.user = {"sub": "p-77", "preferred_username": "p-77", "roles": []}
    client = app.test_client()
    back_from_provider(client)
    return client


def test_unlinking_a_patient_ends_their_web_session_at_once(oidc_app: Flask, fake: FakeProvider) -> None:
    engine = oidc_app.extensions["carepath"]
    client = _linked_patient_signed_in(oidc_app, fake)
    assert client.get("/my").status_code == 200
    with unit_of_work(engine.sessions) as session:
        unlink_identity(session, fake.issuer, "p-77")
    response = client.get("/my")
    assert response.status_code == 302 and response.location.startswith("/sign-in")


def test_sign_out_ends_a_copy_of_a_persons_cookie(oidc_app: Flask) -> None:
    """A person's session names no token to revoke: the ended session's id is what ends a copy."""
    client = oidc_app.test_client()
    back_from_provider(client)
    thief = copy_of(oidc_app, client)
    assert thief.get("/work-list").status_code == 200
    other = oidc_app.test_client()  # the same person in another browser
    back_from_provider(other)
    csrf = csrf_of(text(client.get("/work-list")))
    assert client.post("/sign-out", data={"csrf_token": csrf}).status_code == 303
    response = thief.get("/work-list")
    assert response.status_code == 302 and response.location.startswith("/sign-in")
    assert other.get("/work-list").status_code == 200


def test_sign_out_ends_a_copy_of_a_patients_cookie(oidc_app: Flask, fake: FakeProvider) -> None:
    client = _linked_patient_signed_in(oidc_app, fake)
    thief = copy_of(oidc_app, client)
    assert thief.get("/my").status_code == 200
    csrf = csrf_of(text(client.get("/my")))
    assert client.post("/sign-out", data={"csrf_token": csrf}).status_code == 303
    response = thief.get("/my")
    assert response.status_code == 302 and response.location.startswith("/sign-in")


def _signed_out_at(response: Any) -> str:
    """The provider's sign-out address the signed-out page sends the browser on to."""
    html = text(response)
    assert response.status_code == 200 and 'data-test="provider-sign-out"' in html
    found = re.search(r'<meta http-equiv="refresh" content="2; url=([^"]+)">', html)
    assert found is not None
    link = re.search(r'href="([^"]+)" data-test="provider-sign-out"', html)
    assert link is not None and link.group(1) == found.group(1)
    return html_lib.unescape(found.group(1))


def test_signing_out_ends_the_session_at_the_provider_too(oidc_app: Flask, fake: FakeProvider) -> None:
    """RP-Initiated Logout: a person signed in at the provider is sent to its end_session_endpoint with the
    client id and where to come back, after CarePath's own session has ended (a copy of the cookie is
    refused). Shown as a page, not a redirect: the pages' form-action policy would stop a form's redirect
    to another site."""
    fake.end_session = True
    client = oidc_app.test_client()
    back_from_provider(client)
    thief = copy_of(oidc_app, client)
    csrf = csrf_of(text(client.get("/work-list")))
    url = urlsplit(_signed_out_at(client.post("/sign-out", data={"csrf_token": csrf})))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{fake.issuer}/logout"
    assert parse_qs(url.query) == {"client_id": [CLIENT_ID], "post_logout_redirect_uri": ["http://localhost/sign-in"]}
    assert thief.get("/work-list").status_code == 302


def test_the_provider_sends_the_browser_back_where_configured(
    web_template: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    fake.end_session = True
    back = "https://carepath.trust.example/sign-in"
    with provider_app(web_template, tmp_path, fake, OIDC_POST_LOGOUT_REDIRECT_URL=back) as app:
        client = app.test_client()
        back_from_provider(client)
        csrf = csrf_of(text(client.get("/work-list")))
        url = urlsplit(_signed_out_at(client.post("/sign-out", data={"csrf_token": csrf})))
        assert parse_qs(url.query)["post_logout_redirect_uri"] == [back]


def test_a_provider_without_the_endpoint_signs_out_here_only(oidc_app: Flask) -> None:
    client = oidc_app.test_client()
    back_from_provider(client)  # fake.end_session is False: the discovery document names no endpoint
    csrf = csrf_of(text(client.get("/work-list")))
    response = client.post("/sign-out", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.location == "/sign-in"


def test_a_session_signed_in_with_a_token_signs_out_here_only(oidc_app: Flask, fake: FakeProvider) -> None:
    fake.end_session = True
    system = oidc_app.test_client()
    sign_in_with(system, make_token(oidc_app, "clinician"))
    csrf = csrf_of(text(system.get("/work-list")))
    response = system.post("/sign-out", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.location == "/sign-in"
