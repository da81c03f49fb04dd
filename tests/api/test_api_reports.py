"""GET /v1/reports/measures and /v1/reports/cosd: auditors and managers only, aggregated measures with
small counts suppressed, the COSD export recorded in the access log, CSV, and bad queries refused."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from api_contract import make_token
from click.testing import CliRunner
from flask import Flask
from helpers import assert_problem
from report_cohort import AS_OF, P, Patient, at, cohort, days, write_cohort
from test_api_care_teams import scoped_token

from api import create_app
from api.cli import main
from engine import ManualClock
from engine.db.session import unit_of_work
from engine.reports import COSD_COLUMNS, refresh_summary

PERIOD = "from=2026-01-01T00:00:00Z&to=2026-04-01T00:00:00Z"


@pytest.fixture
def cohort_ids(app: Flask, clock: ManualClock) -> dict[str, str]:
    clock.set(AS_OF)
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        ids = write_cohort(session)
    refresh_summary(
        app.extensions["carepath"].sessions, AS_OF, app.extensions["carepath"].settings.referral_timeframes
    )  # the worker's refresh
    return ids


def _many(count: int) -> dict[str, Patient]:
    """``count`` patients diagnosed in January, each offered an HNA on day 3 (met) -- and the cohort."""
    patients = cohort()
    for n in range(count):
        patients[f"M{n}"] = Patient(P, days(n % 20), tasks=[("offer_hna", days(n % 20 + 3))])
    return patients


@pytest.mark.parametrize("role", ["auditor", "manager"])
def test_auditors_and_managers_read_the_measures_small_counts_suppressed(
    client: Any, auth: Any, role: str, cohort_ids: dict[str, str]
) -> None:
    response = client.get(f"/v1/reports/measures?{PERIOD}&pathway={P}", headers=auth(role))
    assert response.status_code == 200
    report = response.json
    assert (report["pathway"], report["suppression_threshold"], report["as_of"]) == (P, 5, AS_OF.isoformat())
    offered = report["measures"][0]
    assert offered["id"] == "hna_offered_31d"
    # 2 of 4: both below five, so neither is shown, nor the rate that would give them away.
    assert (offered["numerator"], offered["denominator"], offered["rate"]) == (None, None, None)
    assert offered["suppressed"] == ["denominator", "numerator", "rate"]
    assert all(row["reports"] is None for row in report["warning_signs"])
    text = response.get_data(as_text=True)
    assert all(instance_id not in text for instance_id in cohort_ids.values())
    assert "MRN-REPORT" not in text


def test_counts_at_the_threshold_are_shown(app: Flask, client: Any, auth: Any, clock: ManualClock) -> None:
    clock.set(AS_OF)
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        write_cohort(session, _many(20))
    refresh_summary(app.extensions["carepath"].sessions, AS_OF, app.extensions["carepath"].settings.referral_timeframes)
    offered = client.get(f"/v1/reports/measures?{PERIOD}&pathway={P}", headers=auth("manager")).json["measures"][0]
    # The cohort's 2 of 4 and the 20 offered on day 3: 22 of 24, but 2 missed: the 22 is blanked.
    assert (offered["numerator"], offered["denominator"], offered["rate"]) == (None, 24, None)
    assert offered["suppressed"] == ["numerator", "rate"]


def test_the_threshold_is_configurable(deployed_database_url: str, clock: ManualClock) -> None:
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": deployed_database_url,
            "CLOCK": clock,
            "AUTH_CACHE_SECONDS": 0,
            "REPORT_MIN_COUNT": 2,
            "PATHWAYS_DIR": Path(__file__).resolve().parents[1] / "pathways",
        }
    )
    try:
        clock.set(AS_OF)
        with unit_of_work(app.extensions["carepath"].sessions) as session:
            write_cohort(session)
        refresh_summary(
            app.extensions["carepath"].sessions, AS_OF, app.extensions["carepath"].settings.referral_timeframes
        )
        secret = make_token(app, "manager")
        report = (
            app.test_client()
            .get(f"/v1/reports/measures?{PERIOD}&pathway={P}", headers={"Authorization": f"Bearer {secret}"})
            .json
        )
    finally:
        app.extensions["carepath"].close()
    offered = report["measures"][0]
    assert (offered["numerator"], offered["denominator"], offered["rate"], report["suppression_threshold"]) == (
        2,
        4,
        0.5,
        2,
    )


@pytest.mark.parametrize("role", ["system", "clinician", "author", "admin"])
def test_other_roles_are_refused(client: Any, auth: Any, role: str) -> None:
    assert_problem(client.get("/v1/reports/measures", headers=auth(role)), 403, "forbidden")
    assert_problem(client.get("/v1/reports/cosd", headers=auth(role)), 403, "forbidden")


def test_the_measures_as_csv(client: Any, auth: Any, cohort_ids: dict[str, str]) -> None:
    response = client.get(f"/v1/reports/measures?{PERIOD}&pathway={P}&format=csv", headers=auth("manager"))
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {"section": "measures", "group": "hna_offered_31d", "figure": "numerator", "value": "suppressed"} in rows
    assert {"section": "measures", "group": "hna_offered_31d", "figure": "pending", "value": "0"} in rows


def test_the_cosd_export_names_each_patient_and_the_access_log_records_them(
    client: Any, auth: Any, cohort_ids: dict[str, str]
) -> None:
    body = client.get(f"/v1/reports/cosd?{PERIOD}&pathway={P}", headers=auth("manager")).json
    assert body["columns"] == list(COSD_COLUMNS)
    assert {row["instance_id"] for row in body["rows"]} == {cohort_ids[p] for p in "ABCEF"}
    log = client.get("/v1/access-log?limit=200", headers=auth("auditor")).json["items"]
    exported = {item["instance_id"] for item in log if item["action"] == "reports.export"}
    assert exported == {cohort_ids[p] for p in "ABCEF"}
    response = client.get(f"/v1/reports/cosd?{PERIOD}&pathway={P}&format=csv", headers=auth("auditor"))
    assert response.mimetype == "text/csv"
    assert response.get_data(as_text=True).splitlines()[0] == ",".join(COSD_COLUMNS)


@pytest.mark.parametrize(
    "query,field",
    [
        ("from=2026-04-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("from=yesterday", "from"),
        ("to=2026-01-01T00:00:00", "to"),
        ("pathway=../x", "pathway"),
        ("team=../x", "team"),
        ("format=xlsx", "format"),
        ("patient_ref=MRN-1", "patient_ref"),
    ],
)
def test_a_bad_query_is_a_located_400(client: Any, auth: Any, query: str, field: str) -> None:
    body = assert_problem(client.get(f"/v1/reports/measures?{query}", headers=auth("manager")), 400, "request-invalid")
    assert [e["field"] for e in body["errors"]] == [field]


def test_without_a_period_the_last_year_is_reported(client: Any, auth: Any, clock: ManualClock) -> None:
    clock.set(at(6, 1))
    report = client.get("/v1/reports/measures", headers=auth("manager")).json
    assert (report["from"], report["to"]) == ("2025-06-01T09:00:00+00:00", "2026-06-01T09:00:00+00:00")


def _cli(app: Flask, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("CAREPATH_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(Path(__file__).resolve().parents[1] / "pathways"))
    return CliRunner().invoke(main, ["report", *args])


def test_the_command_line_prints_the_measures_as_csv_and_json(
    app: Flask, cohort_ids: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    printed = _cli(app, monkeypatch, "measures", "--from", "2026-01-01", "--to", "2026-04-01", "--pathway", P)
    assert printed.exit_code == 0, printed.output
    rows = list(csv.DictReader(io.StringIO(printed.stdout)))
    assert {"section": "measures", "group": "hna_offered_31d", "figure": "numerator", "value": "suppressed"} in rows
    monkeypatch.setenv("CAREPATH_REPORT_MIN_COUNT", "2")
    as_json = _cli(
        app, monkeypatch, "measures", "--from", "2026-01-01", "--to", "2026-04-01", "--pathway", P, "--format", "json"
    )
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert (report["measures"][0]["numerator"], report["measures"][0]["denominator"]) == (2, 4)
    refused = _cli(app, monkeypatch, "measures", "--from", "2026-04-01", "--to", "2026-01-01")
    assert refused.exit_code == 2 and "--to" in refused.output


def test_the_command_line_writes_the_cosd_export(
    app: Flask, cohort_ids: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "cosd.csv"
    printed = _cli(
        app, monkeypatch, "cosd", "--from", "2026-01-01", "--to", "2026-04-01", "--pathway", P, "--output", str(target)
    )
    assert printed.exit_code == 0, printed.output
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert len(rows) == 9 and "9 row(s)" in printed.stderr
    assert {row["instance_id"] for row in rows} == {cohort_ids[p] for p in "ABCEF"}


def test_the_command_line_refreshes_the_summary(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        write_cohort(session)
    first = _cli(app, monkeypatch, "refresh")
    assert first.exit_code == 0 and "summary: 6 instance(s) refreshed" in first.stdout, first.output
    assert "summary: 0 instance(s) refreshed" in _cli(app, monkeypatch, "refresh").stdout


def test_a_manager_limited_to_care_teams_reports_and_exports_those_teams_patients_only(
    app: Flask, client: Any, clock: ManualClock
) -> None:
    # docs/access.md: only an auditor reaches the whole organisation. A manager whose token names the lung
    # team counts lung's patients, exports lung's rows, and cannot ask for the breast team; a manager of
    # the whole organisation (no team named) gets both teams' patients, as before.
    clock.set(AS_OF)
    patients = cohort()
    for letter in "EF":
        patients[letter].care_team = "lung"
    with unit_of_work(app.extensions["carepath"].sessions) as session:
        ids = write_cohort(session, patients)
    refresh_summary(app.extensions["carepath"].sessions, AS_OF, app.extensions["carepath"].settings.referral_timeframes)
    lung = {"Authorization": f"Bearer {scoped_token(app, 'manager', 'rx1', ['lung'])}"}
    trust = {"Authorization": f"Bearer {scoped_token(app, 'manager', 'rx1')}"}

    def exported(headers: dict[str, str], query: str = "") -> set[str]:
        response = client.get(f"/v1/reports/cosd?{PERIOD}&pathway={P}{query}", headers=headers)
        assert response.status_code == 200, response.json
        return {row["instance_id"] for row in response.json["rows"]}

    assert exported(lung) == {ids["E"], ids["F"]}
    assert exported(trust) == {ids[p] for p in "ABCEF"}
    lung_measures = client.get(f"/v1/reports/measures?{PERIOD}&pathway={P}", headers=lung)
    team_measures = client.get(f"/v1/reports/measures?{PERIOD}&pathway={P}&team=lung", headers=trust)
    assert lung_measures.status_code == team_measures.status_code == 200
    assert lung_measures.json["measures"] == team_measures.json["measures"]
    refused = client.get(f"/v1/reports/measures?{PERIOD}&team=breast", headers=lung)
    assert [e["field"] for e in assert_problem(refused, 400, "request-invalid")["errors"]] == ["team"]
