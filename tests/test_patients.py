"""Patient identities (issue 18 point 2): a patient's token names its patient; an OpenID Connect subject
linked to a patient reference (or carrying the configured patient claim) signs in as that patient and no
one else; the one scoping check; and which tasks are the patient's own forms."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from oidc_provider import AUDIENCE, FakeProvider, serve

from api.cli import main
from engine import CarePath, ManualClock, Settings
from engine.access import PATIENT_REF_PATTERN, Principal, authenticate, create_token, person_id
from engine.db.session import read_only, unit_of_work
from engine.documents.build import warning_sign_choices
from engine.errors import ConflictError, InvalidInputError, InvalidTokenError, NotFoundError
from engine.identity import Provider
from engine.instances.view import PATIENT_REF_PATTERN as INSTANCES_PATIENT_REF_PATTERN
from engine.patients import (
    PATIENT_FORMS,
    complete_own_form,
    link_identity,
    linked_patient,
    list_identities,
    own_forms,
    report_warning_sign,
    require_own,
    still_linked,
    unlink_identity,
)
from engine.rules.warning_signs import load_warning_signs
from engine.settings import OidcSettings

NOW = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
ISSUER = "https://login.example.org/realms/patients"


def patient(ref: str) -> Principal:
    return Principal(role="patient", token_id="tok_0123456789abcdef", label="patient", patient_ref=ref)


def test_the_access_module_names_patients_by_the_one_rule() -> None:
    assert PATIENT_REF_PATTERN == INSTANCES_PATIENT_REF_PATTERN


def test_a_patient_token_names_its_patient_and_only_a_patient_token_does(carepath: CarePath) -> None:
    with unit_of_work(carepath.sessions) as session:
        _, secret = create_token(session, "patient", "app", carepath.clock, patient_ref="MRN-1001")
        for role, ref in (("patient", None), ("clinician", "MRN-1001"), ("patient", "Jane Smith")):
            with pytest.raises(InvalidInputError) as refused:
                create_token(session, role, "x", carepath.clock, patient_ref=ref)
            assert refused.value.problems[0].field == "/patient_ref"
            assert "Jane" not in str(refused.value)
    with read_only(carepath.sessions) as session:
        found = authenticate(session, secret, carepath.clock)
    assert (found.role, found.patient_ref) == ("patient", "MRN-1001")
    # The trail names the token, never the patient's reference.
    assert found.actor.startswith("patient:tok_") and "MRN" not in found.actor


def test_identities_are_linked_once_listed_and_unlinked(carepath: CarePath) -> None:
    with unit_of_work(carepath.sessions) as session:
        first = link_identity(session, ISSUER, "subject-1", "MRN-1001", "admin:tok_a", carepath.clock)
        again = link_identity(session, ISSUER, "subject-1", "MRN-1001", "admin:tok_b", carepath.clock)
        assert again == first  # linking again to the same patient changes nothing
        with pytest.raises(ConflictError):
            link_identity(session, ISSUER, "subject-1", "MRN-2002", "admin:tok_a", carepath.clock)
        link_identity(session, ISSUER, "subject-2", "MRN-2002", "admin:tok_a", carepath.clock)
    assert linked_patient(carepath.sessions, ISSUER, "subject-1") == "MRN-1001"
    assert linked_patient(carepath.sessions, "https://other.example.org", "subject-1") is None
    assert still_linked(carepath.sessions, ISSUER, "MRN-1001", person_id(ISSUER, "subject-1"))
    assert not still_linked(carepath.sessions, ISSUER, "MRN-2002", person_id(ISSUER, "subject-1"))
    with read_only(carepath.sessions) as session:
        assert [link.subject for link in list_identities(session)] == ["subject-1", "subject-2"]
        assert [link.subject for link in list_identities(session, "MRN-2002")] == ["subject-2"]
    with unit_of_work(carepath.sessions) as session:
        assert unlink_identity(session, ISSUER, "subject-1").patient_ref == "MRN-1001"
        with pytest.raises(NotFoundError):
            unlink_identity(session, ISSUER, "subject-1")
    assert linked_patient(carepath.sessions, ISSUER, "subject-1") is None
    assert not still_linked(carepath.sessions, ISSUER, "MRN-1001", person_id(ISSUER, "subject-1"))


@pytest.mark.parametrize(
    "issuer,subject,patient_ref,field",
    [
        ("not a url", "s", "MRN-1", "/issuer"),
        (ISSUER, "has space", "MRN-1", "/subject"),
        (ISSUER, "x" * 256, "MRN-1", "/subject"),
        (ISSUER, "s", "Jane Smith", "/patient_ref"),
    ],
)
def test_a_malformed_identity_is_refused_by_field(
    carepath: CarePath, issuer: str, subject: str, patient_ref: str, field: str
) -> None:
    with unit_of_work(carepath.sessions) as session, pytest.raises(InvalidInputError) as refused:
        link_identity(session, issuer, subject, patient_ref, "admin:tok_a", carepath.clock)
    assert [p.field for p in refused.value.problems] == [field]


# --- the scoping check and the patient's own forms ------------------------------------------------------


def test_another_patients_instance_is_not_found_worded_as_one_nobody_has(carepath: CarePath) -> None:
    view = carepath.instances.start("test_assessment", "MRN-1001", "system:test")
    assert require_own(patient("MRN-1001"), view) is view
    for who in (patient("MRN-2002"), Principal(role="clinician", token_id="tok_c", label="c")):
        with pytest.raises(NotFoundError) as hidden:
            require_own(who, view)
        with pytest.raises(NotFoundError) as missing:
            carepath.instances.get("00000000-0000-4000-8000-000000000000")
        assert hidden.value.message == missing.value.message.replace("00000000-0000-4000-8000-000000000000", view.id)


def test_a_patient_completes_no_staff_task(carepath: CarePath) -> None:
    view = carepath.instances.start("test_assessment", "MRN-1001", "system:test")
    assert [t["element"] for t in view.ready_tasks] == ["hna"] and own_forms(view) == []
    with pytest.raises(NotFoundError):
        complete_own_form(
            carepath.instances,
            patient("MRN-1001"),
            view.id,
            view.ready_tasks[0]["id"],
            {"anxiety": 1, "fatigue": 1},
            None,
        )
    assert carepath.instances.get(view.id).version == view.version


def test_the_patient_forms_are_the_bundled_patient_tasks() -> None:
    """Each element named is a user task of a bundled shared sub-pathway (a renamed one would be missed)."""
    shared = (Path(__file__).resolve().parent.parent / "pathways" / "shared").glob("*.bpmn")
    text = "".join(p.read_text(encoding="utf-8") for p in shared)
    for element in set(PATIENT_FORMS) - {"survey"}:  # a pathway's own survey: none bundled (the national one)
        assert f'<bpmn:userTask id="{element}"' in text, element
    assert '<bpmn:userTask id="survey"' not in text  # the bundled survey is the national one's invitation


def test_a_warning_sign_report_is_bounded_and_goes_to_the_patients_own_pathways(carepath: CarePath) -> None:
    with pytest.raises(InvalidInputError) as refused:
        report_warning_sign(carepath.instances, patient("MRN-1001"), "Fever!", "x" * 1001)
    assert [p.field for p in refused.value.problems] == ["/warning_sign", "/description"]
    with pytest.raises(NotFoundError):
        report_warning_sign(carepath.instances, Principal(role="system", token_id="tok_s", label="s"), "fever", None)


# --- OpenID Connect: a linked subject, or the patient claim, is a patient -------------------------------


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with serve(FakeProvider(), NOW) as provider:
        provider.user = {"sub": "p-77", "roles": []}
        yield provider


def provider_for(fake: FakeProvider, links: dict[str, str], **settings: Any) -> Provider:
    oidc = OidcSettings(issuer=fake.issuer, audience=AUDIENCE, **settings)
    return Provider(oidc, ManualClock(NOW), patients=lambda issuer, subject: links.get(f"{issuer}|{subject}"))


def reason(provider: Provider, token: str, caplog: pytest.LogCaptureFixture) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="carepath.identity"), pytest.raises(InvalidTokenError):
        provider.principal(token)
    return next(r.getMessage().split(": ", 1)[1] for r in caplog.records if "token refused" in r.getMessage())


def test_a_linked_subject_signs_in_as_their_patient(fake: FakeProvider) -> None:
    found = provider_for(fake, {f"{fake.issuer}|p-77": "MRN-1001"}).principal(fake.token(NOW))
    assert (found.role, found.patient_ref, found.staff_id) == ("patient", "MRN-1001", None)
    assert found.actor.startswith("patient:oidc_") and "MRN" not in found.actor and "p-77" not in found.actor


def test_the_patient_claim_names_the_patient(fake: FakeProvider) -> None:
    provider = provider_for(fake, {}, patient_claim="patient.ref")
    found = provider.principal(fake.token(NOW, patient={"ref": "SYN-0042"}))
    assert (found.role, found.patient_ref) == ("patient", "SYN-0042")


@pytest.mark.parametrize(
    "case,links,claims,expected",
    [
        ("staff role and a link", {"p-77": "MRN-1001"}, {"roles": ["clinician"]}, "several_roles"),
        ("link and claim disagree", {"p-77": "MRN-1001"}, {"patient_ref": "MRN-2002"}, "patient_mismatch"),
        ("a name in the claim", {}, {"patient_ref": "Jane Smith"}, "malformed_patient_ref"),
        ("role patient, no link", {}, {"roles": ["patient"]}, "no_patient_ref"),
        ("no role, no link", {}, {}, "no_role"),
    ],
)
def test_patient_tokens_that_are_refused(
    fake: FakeProvider,
    caplog: pytest.LogCaptureFixture,
    case: str,
    links: dict[str, str],
    claims: dict[str, Any],
    expected: str,
) -> None:
    provider = provider_for(fake, {f"{fake.issuer}|{k}": v for k, v in links.items()}, patient_claim="patient_ref")
    assert reason(provider, fake.token(NOW, **claims), caplog) == expected
    assert "MRN" not in caplog.text and "Jane" not in caplog.text


def test_a_staff_token_is_still_staff(fake: FakeProvider) -> None:
    found = provider_for(fake, {}).principal(fake.token(NOW, roles=["clinician"]))
    assert (found.role, found.patient_ref, found.staff_id) == ("clinician", None, "p-77")


# --- the command line ----------------------------------------------------------------------------------


def test_the_command_line_links_lists_and_unlinks(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    runner = CliRunner()
    args = ["--issuer", ISSUER, "--subject", "p-77"]
    linked = runner.invoke(main, ["patients", "link", *args, "--patient-ref", "MRN-1001"])
    assert linked.exit_code == 0, linked.output
    conflict = runner.invoke(main, ["patients", "link", *args, "--patient-ref", "MRN-2002"])
    assert conflict.exit_code == 1 and "another patient" in conflict.output
    named = runner.invoke(
        main, ["patients", "link", "--issuer", ISSUER, "--subject", "p-78", "--patient-ref", "Jane Smith"]
    )
    assert named.exit_code == 1 and "/patient_ref" in named.output and "Jane" not in named.output
    listed = runner.invoke(main, ["patients", "list", "--patient-ref", "MRN-1001"])
    assert listed.exit_code == 0 and f"MRN-1001\t{ISSUER}\tp-77" in listed.stdout and "admin:cli" in listed.stdout
    assert runner.invoke(main, ["patients", "unlink", *args]).exit_code == 0
    assert runner.invoke(main, ["patients", "unlink", *args]).exit_code == 1


def test_the_command_line_makes_a_patient_token_for_one_patient(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    runner = CliRunner()
    missing = runner.invoke(main, ["token", "create", "--role", "patient"])
    assert missing.exit_code == 2 and "--patient-ref" in missing.output
    staff = runner.invoke(main, ["token", "create", "--role", "clinician", "--patient-ref", "MRN-1"])
    assert staff.exit_code == 2
    created = runner.invoke(main, ["token", "create", "--role", "patient", "--patient-ref", "SYN-DEMO-0002"])
    assert created.exit_code == 0, created.output
    app = CarePath(Settings(database_url=database_url), ManualClock(NOW))
    try:
        with read_only(app.sessions) as session:
            found = authenticate(session, created.stdout.strip(), app.clock)
    finally:
        app.close()
    assert (found.role, found.patient_ref) == ("patient", "SYN-DEMO-0002")


def test_the_warning_signs_offered_are_the_catalogues_for_the_diagnosis_in_the_readers_language(
    carepath: CarePath,
) -> None:
    view = carepath.instances.start("test_assessment", "MRN-1001", "system:test")
    english = warning_sign_choices(carepath, view.id, "en")
    swedish = warning_sign_choices(carepath, view.id, "sv")
    catalogue = load_warning_signs(carepath.rules.catalogue_dir / "warning_signs.yaml")
    assert [s["code"] for s in english] == [s.code for s in catalogue.for_diagnosis("general")]
    assert [s["code"] for s in swedish] == [s["code"] for s in english]
    assert english[0]["urgency"] == "emergency" and english[0]["name"] != swedish[0]["name"]


def test_the_warning_signs_follow_the_site_the_diagnosis_names(carepath: CarePath) -> None:
    """Outside a site's own pathway the recorded diagnosis chooses the signs, read as the rules read it
    (engine.rules.diagnoses): "Bowel cancer" and "C18" are colorectal cancer, with its own signs."""
    catalogue = load_warning_signs(carepath.rules.catalogue_dir / "warning_signs.yaml")
    colorectal = [s.code for s in catalogue.for_diagnosis("colorectal")]
    assert colorectal != [s.code for s in catalogue.for_diagnosis("general")]
    for i, written in enumerate(("Bowel cancer", "C18", "adenocarcinoma of the rectum")):
        view = carepath.instances.start("test_assessment", f"MRN-20{i}", "system:test", data={"diagnosis": written})
        assert [s["code"] for s in warning_sign_choices(carepath, view.id)] == colorectal, written
    kidney = carepath.instances.start("test_assessment", "MRN-209", "system:test", data={"diagnosis": "Kidney"})
    assert [s["code"] for s in warning_sign_choices(carepath, kidney.id)] == [
        s.code for s in catalogue.for_diagnosis("general")
    ]
