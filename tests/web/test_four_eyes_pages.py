"""Four eyes on the authors' pages: a pending version, its Activate button, and the refusal the author
who deployed it gets; a migration asked for on the migration page and approved there by a second author."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from web_helpers import csrf_of, sign_in_with

from engine.access import create_token
from engine.db.session import unit_of_work
from engine.instances.migration_requests import list_migration_requests

TESTS = Path(__file__).resolve().parent.parent
CHANGED = (
    (TESTS / "pathways" / "assessment.bpmn")
    .read_bytes()
    .replace(b'name="Test assessment pathway"', b'name="Test assessment pathway v2"')
)


def _signed_in(app: Flask, staff_id: str) -> tuple[FlaskClient, str]:
    """A client signed in with an author token held by ``staff_id``, and the actor it is recorded as."""
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        token_id, secret = create_token(session, "author", "test", engine.clock, staff_id=staff_id)
    client = app.test_client()
    assert sign_in_with(client, secret).status_code == 303
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
    assert "second author" in refused.get_data(as_text=True) and 'data-test="activation-refused"' in refused.get_data(
        as_text=True
    )
    assert bob.post(url, data={}).status_code == 400  # the form's CSRF token is needed

    page = bob.get("/pathways/test_assessment").get_data(as_text=True)
    done = bob.post(url, data={"csrf_token": csrf_of(page)})
    assert done.status_code == 303
    page = bob.get("/pathways/test_assessment").get_data(as_text=True)
    assert "Active (new patients start on it)" in page and 'data-test="activate"' not in page
    assert app.extensions["carepath"].catalog.current("test_assessment").version == pending.version


def test_an_author_asks_for_a_migration_and_a_second_author_approves_it_on_the_page(app: Flask) -> None:
    engine = app.extensions["carepath"]
    view = engine.instances.start("test_assessment", "MRN-1001", "system:ehr")
    alice, alice_actor = _signed_in(app, "alice")
    bob, bob_actor = _signed_in(app, "bob")
    [new] = engine.catalog.deploy_upload({"assessment.bpmn": CHANGED}, alice_actor)
    engine.catalog.activate("test_assessment", new.version, bob_actor)
    page_url = "/pathways/test_assessment/migration"
    page = alice.get(page_url).get_data(as_text=True)
    assert "1 would move, 0 refused" in page and 'data-test="ask-migration"' in page
    assert "No migration of this pathway has been asked for." in page
    ask = "/pathways/test_assessment/migration-requests"
    assert alice.post(ask, data={}).status_code == 400  # the form's CSRF token is needed
    asked = alice.post(ask, data={"csrf_token": csrf_of(page)})
    assert asked.status_code == 303 and asked.headers["Location"].startswith(page_url + "#request-")
    [request] = list_migration_requests(engine.instances, "test_assessment")
    assert (request.status, request.requested_by, request.target_version) == ("requested", alice_actor, new.version)
    page = alice.get(page_url).get_data(as_text=True)
    assert f'id="request-{request.id}"' in page and "Waiting for a second author" in page
    assert "MRN-1001" not in page  # authors do not read instances: named by id only

    approve = f"/pathways/test_assessment/migration-requests/{request.id}/approval"
    refused = alice.post(approve, data={"csrf_token": csrf_of(page)})  # the author who asked
    assert refused.status_code == 403
    assert 'data-test="migration-refused"' in refused.get_data(as_text=True)
    assert "second author" in refused.get_data(as_text=True)
    assert engine.instances.get(view.id).pathway_version == view.pathway_version  # nothing moved
    assert bob.post(approve, data={}).status_code == 400  # CSRF, for the approval too

    page = bob.get(page_url).get_data(as_text=True)
    done = bob.post(approve, data={"csrf_token": csrf_of(page)})
    assert done.status_code == 303
    assert engine.instances.get(view.id).pathway_version == new.version
    page = bob.get(page_url).get_data(as_text=True)
    assert 'data-status="executed"' in page and "1 moved, 0 refused" in page and bob_actor in page
    assert 'data-test="approve-migration"' not in page
    again = bob.post(approve, data={"csrf_token": csrf_of(page)})
    assert again.status_code == 409 and 'data-test="migration-refused"' in again.get_data(as_text=True)
    missing = bob.post(
        "/pathways/test_assessment/migration-requests/00000000-0000-4000-8000-000000000000/approval",
        data={"csrf_token": csrf_of(page)},
    )
    assert missing.status_code == 404
