"""Four eyes on the authors' versions page: a pending version, its Activate button, and the refusal
the author who deployed it gets."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from web_helpers import csrf_of

from engine.access import create_token
from engine.db.session import unit_of_work

TESTS = Path(__file__).resolve().parent.parent
CHANGED = (TESTS / "pathways" / "assessment.bpmn").read_bytes().replace(
    b'name="Test assessment pathway"', b'name="Test assessment pathway v2"')


def _signed_in(app: Flask, staff_id: str) -> tuple[FlaskClient, str]:
    """A client signed in with an author token held by ``staff_id``, and the actor it is recorded as."""
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        token_id, secret = create_token(session, "author", "test", engine.clock, staff_id=staff_id)
    client = app.test_client()
    assert client.get(f"/sign-in?token={secret}").status_code == 303
    return client, f"author:{token_id} for staff:{staff_id}"


def test_a_second_author_activates_a_pending_version_from_the_versions_page(app: Flask) -> None:
    alice, alice_actor = _signed_in(app, "alice")
    bob, _ = _signed_in(app, "bob")
    [pending] = app.extensions["carepath"].catalog.deploy_upload({"assessment.bpmn": CHANGED}, alice_actor)
    page = bob.get("/pathways/test_assessment").get_data(as_text=True)
    assert "Pending (waiting for a second author)" in page and 'data-test="activate"' in page
    url = f"/pathways/test_assessment/versions/{pending.version[:12]}/activation"

    own_page = alice.get("/pathways/test_assessment").get_data(as_text=True)
    refused = alice.post(url, data={"csrf_token": csrf_of(own_page)})
    assert refused.status_code == 403
    assert "second author" in refused.get_data(as_text=True) and 'data-test="activation-refused"' in \
        refused.get_data(as_text=True)
    assert bob.post(url, data={}).status_code == 400  # the form's CSRF token is needed

    page = bob.get("/pathways/test_assessment").get_data(as_text=True)
    done = bob.post(url, data={"csrf_token": csrf_of(page)})
    assert done.status_code == 303
    page = bob.get("/pathways/test_assessment").get_data(as_text=True)
    assert "Active (new patients start on it)" in page and 'data-test="activate"' not in page
    assert app.extensions["carepath"].catalog.current("test_assessment").version == pending.version
