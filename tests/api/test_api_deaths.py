"""A recorded death over HTTP and at the command line (engine.instances.deaths): ``patient_died`` ends an
instance in error too, a later start is 409 ``patient-deceased``, and a record made in error is withdrawn."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner
from flask import Flask
from helpers import assert_problem, start

from api.cli import main


def _in_error(app: Flask, patient_ref: str) -> str:
    instances = app.extensions["carepath"].instances
    view = instances.start("test_bad_condition", patient_ref, "system:ehr")
    failed = instances.complete_task(view.id, view.ready_tasks[0]["id"], {"pain": 7}, "clinician:cns-1")
    assert failed.status == "error"
    return failed.id


def test_a_death_ends_an_instance_in_error_and_refuses_later_starts(app: Flask, client: Any, auth: Any) -> None:
    stopped = _in_error(app, "MRN-7001")
    running = start(client, auth, "MRN-7001").json["id"]  # the test pathway does not listen for the message
    answer = client.post(
        "/v1/messages", headers=auth("system"), json={"name": "patient_died", "patient_ref": "MRN-7001"}
    )
    assert answer.status_code == 200, answer.json
    assert sorted((i["id"], i["status"]) for i in answer.json["delivered"]) == sorted(
        [(stopped, "cancelled"), (running, "cancelled")]
    )
    body = assert_problem(
        client.post(
            "/v1/instances", headers=auth("system"), json={"pathway_id": "test_careplan", "patient_ref": "MRN-7001"}
        ),
        409,
        "patient-deceased",
    )
    assert "MRN-7001" not in json.dumps(body)
    again = client.post(
        "/v1/messages", headers=auth("system"), json={"name": "patient_died", "patient_ref": "MRN-7001"}
    )
    assert again.status_code == 200 and again.json["delivered"] == []  # nothing left to end: not an error


def test_a_bad_death_notice_is_refused_whole(client: Any, auth: Any) -> None:
    body = assert_problem(
        client.post(
            "/v1/messages",
            headers=auth("system"),
            json={"name": "patient_died", "patient_ref": "MRN-7002", "payload": {"date_of_death": "yesterday"}},
        ),
        422,
        "task-data-invalid",
    )
    assert [e["field"] for e in body["errors"]] == ["/date_of_death"]
    start(client, auth, "MRN-7002")  # nothing was recorded


def test_the_command_line_shows_and_withdraws_a_death_recorded_in_error(
    app: Flask, client: Any, auth: Any, test_settings: Any
) -> None:
    env = {
        "CAREPATH_DATABASE_URL": test_settings.database_url,
        "CAREPATH_PATHWAYS_DIR": str(test_settings.pathways_dir),
    }
    runner = CliRunner()
    assert runner.invoke(main, ["death-record", "show", "MRN-7003"], env=env).exit_code == 1
    client.post("/v1/messages", headers=auth("system"), json={"name": "patient_died", "patient_ref": "MRN-7003"})
    shown = runner.invoke(main, ["death-record", "show", "MRN-7003"], env=env)
    assert shown.exit_code == 0 and json.loads(shown.stdout)["withdrawn_at"] is None
    refused = runner.invoke(main, ["death-record", "withdraw", "MRN-7003", "--reason", ""], env=env)
    assert refused.exit_code == 2 and "--reason" in refused.output
    withdrawn = runner.invoke(main, ["death-record", "withdraw", "MRN-7003", "--reason", "wrong patient"], env=env)
    assert withdrawn.exit_code == 0, withdrawn.output
    assert json.loads(withdrawn.stdout)["withdrawn_by"] == "cli:death-record"
    start(client, auth, "MRN-7003")


def test_a_death_ends_the_patients_instances_in_every_team_and_shows_the_sender_only_its_own(
    app: Flask, client: Any, auth: Any
) -> None:
    from engine.access import create_token
    from engine.db.session import unit_of_work

    engine = app.extensions["carepath"]
    placed = {}
    for team in ("breast", "lung"):
        started = client.post(
            "/v1/instances",
            headers=auth("system"),
            json={
                "pathway_id": "test_careplan" if team == "breast" else "test_timer_p1d",
                "patient_ref": "MRN-7004",
                "organisation": "rx1",
                "care_team": team,
                **({"data": {"age": 54}} if team == "breast" else {}),
            },
        )
        assert started.status_code == 201, started.json
        placed[team] = started.json["id"]
    with unit_of_work(engine.sessions) as session:
        _, breast_app = create_token(
            session, "system", "breast team's app", engine.clock, organisation="rx1", teams=["breast"]
        )
    answer = client.post(
        "/v1/messages",
        headers={"Authorization": f"Bearer {breast_app}"},
        json={"name": "patient_died", "patient_ref": "MRN-7004"},
    )
    assert answer.status_code == 200, answer.json
    assert [i["id"] for i in answer.json["delivered"]] == [placed["breast"]]  # the lung team's is not shown...
    assert engine.instances.get(placed["lung"]).status == "cancelled"  # ...but it ended: no team invites them again


def test_a_death_from_another_organisation_unrelated_to_the_patient_changes_nothing(
    app: Flask, client: Any, auth: Any
) -> None:
    """A sender with an organisation records a death only for a patient it has an instance of (any status, any
    team of its organisation). For any other patient the answer is the one for an unknown patient, and no
    instance ends; a related sender's death ends the patient's pathways in every organisation."""
    from engine.access import create_token
    from engine.db.session import unit_of_work

    engine = app.extensions["carepath"]

    def started(patient_ref: str, organisation: str, team: str, pathway: str = "test_timer_p1d") -> str:
        where = {"organisation": organisation, "care_team": team}
        response = client.post(
            "/v1/instances", headers=auth("system"), json={"pathway_id": pathway, "patient_ref": patient_ref, **where}
        )
        assert response.status_code == 201, response.json
        return str(response.json["id"])

    elsewhere = started("MRN-7005", "rx2", "breast")  # rx2's patient only
    lung = started("MRN-7006", "rx1", "lung")  # another team of the sender's organisation
    shared_rx1, shared_rx2 = (
        started("MRN-7007", "rx1", "breast"),
        started("MRN-7007", "rx2", "breast", "test_assessment"),
    )
    with unit_of_work(engine.sessions) as session:
        _, breast_app = create_token(
            session, "system", "breast team's app", engine.clock, organisation="rx1", teams=["breast"]
        )
    sender = {"Authorization": f"Bearer {breast_app}"}

    def died(patient_ref: str) -> Any:
        return client.post("/v1/messages", headers=sender, json={"name": "patient_died", "patient_ref": patient_ref})

    unrelated, unknown = died("MRN-7005"), died("MRN-7999")
    assert (unrelated.status_code, unrelated.json) == (unknown.status_code, unknown.json) == (200, {"delivered": []})
    assert engine.instances.get(elsewhere).status == "running"
    assert engine.instances.death_record("MRN-7005") is None and engine.instances.death_record("MRN-7999") is None
    start(client, auth, "MRN-7005")  # rx2 may still start pathways for its patient
    # Another team of the sender's organisation: related (the hand-over of a death within the trust).
    assert died("MRN-7006").json == {"delivered": []}  # the lung team's instance is not shown to the breast app...
    assert engine.instances.get(lung).status == "cancelled"  # ...but it ended
    # A patient the sender looks after: the death is the patient's, so it ends rx2's pathway too.
    shared = died("MRN-7007")
    assert [i["id"] for i in shared.json["delivered"]] == [shared_rx1]
    assert engine.instances.get(shared_rx2).status == "cancelled"
    assert engine.instances.death_record("MRN-7007") is not None
