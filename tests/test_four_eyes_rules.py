"""Four eyes for rule sets (issue 18, point 4): a changed rule file is a pending version that evaluations
in pathways do not use until a second author activates it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import CarePath, FourEyesError, ManualClock, NotFoundError, Settings, VersionStateError
from engine.db.session import unit_of_work
from engine.documents.build import warning_sign_choices
from engine.errors import RuleFileError
from engine.rules import Assessment, PatientContext, RuleSetRegistry, list_evaluations
from engine.rules.activation import warning_signs_in_use
from engine.rules.store import evaluate_and_record

TESTS = Path(__file__).resolve().parent
ALICE, BOB = "author:staff:alice", "author:staff:bob"
THRESHOLD = "concern: {code: fatigue, score: {at_least: 5}}"
REFERRAL = "psychological-support-referral"


@pytest.fixture
def app(tmp_path: Path, database_url: str, clock: ManualClock) -> Iterator[CarePath]:
    rules = tmp_path / "rules"
    shutil.copytree(TESTS.parent / "rules", rules, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    assert THRESHOLD in (rules / "supportive_care.yaml").read_text()
    settings = Settings(database_url=database_url, pathways_dir=TESTS / "pathways", rules_dir=rules)  # four eyes on
    # Re-read the rule file on every use (a server trusts a file's stat for a second).
    carepath = CarePath(settings, clock, upgrade=True, rules=RuleSetRegistry(rules, recheck_seconds=0))
    carepath.catalog.sync_library()
    try:
        yield carepath
    finally:
        carepath.close()


def _proposed_codes(app: CarePath, patient: str) -> tuple[set[str], str]:
    """The care plan codes an HNA scoring fatigue 3 proposes, and the rule-set version that proposed them."""
    view = app.instances.start("test_careplan", patient, "system:ehr", {"age": 54})
    view = app.instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"concerns": {"fatigue": 3}}, "clinician:cns-1"
    )
    assert view.status == "running", view.incident
    with app.sessions() as session:
        [evaluation] = list_evaluations(session, instance_id=view.id)
        version = evaluation.ruleset_version
    return {item["code"] for item in app.care_plans.get(view.id).items}, version


def test_a_changed_rule_file_is_pending_until_a_second_author_activates_it(app: CarePath) -> None:
    [first] = app.rule_sets.sync()  # the bootstrap: the folder's first version is active
    assert first.name == "supportive_care" and first.active and first.activated_by == "system"
    codes, version = _proposed_codes(app, "SYN-1")
    assert "fatigue-management" not in codes and version == first.rules_version

    rule_file = app.settings.rules_dir / "supportive_care.yaml"
    rule_file.write_text(rule_file.read_text().replace(THRESHOLD, THRESHOLD.replace("at_least: 5", "at_least: 2")))
    [pending] = app.rule_sets.sync(ALICE)
    assert pending.version != first.version and not pending.active and pending.deployed_by == ALICE
    assert app.rules.current("supportive_care").version == pending.rules_version  # what `rules test` reads
    codes, version = _proposed_codes(app, "SYN-2")
    assert "fatigue-management" not in codes and version == first.rules_version  # evaluations keep the active one

    for same_person in (ALICE, "author:tok_9 for staff:alice", "author:tok_9"):
        with pytest.raises(FourEyesError):
            app.rule_sets.activate("supportive_care", pending.version, same_person)
    with pytest.raises(NotFoundError):  # "_" is itself, not LIKE's "any character"
        app.rule_sets.activate("supportive_care", "____" + pending.version[4:12], BOB)
    activated = app.rule_sets.activate("supportive_care", pending.version[:12], BOB)
    assert activated.active and activated.activated_by == BOB
    codes, version = _proposed_codes(app, "SYN-3")
    assert "fatigue-management" in codes and version == pending.rules_version
    listed = app.rule_sets.versions("supportive_care")
    assert [(v.version, v.active) for v in listed] == [(pending.version, True), (first.version, False)]
    with pytest.raises(VersionStateError):
        app.rule_sets.activate("supportive_care", pending.version, "author:staff:carol")
    with pytest.raises(NotFoundError):
        app.rule_sets.activate("supportive_care", "zzzz", BOB)


def test_the_active_version_is_used_even_when_the_folder_moved_on(app: CarePath) -> None:
    [first] = app.rule_sets.sync()
    rule_file = app.settings.rules_dir / "supportive_care.yaml"
    original = rule_file.read_text()
    rule_file.write_text(original.replace(THRESHOLD, THRESHOLD.replace("at_least: 5", "at_least: 2")))
    # Not even recorded yet: the folder's text is not what pathways evaluate.
    codes, version = _proposed_codes(app, "SYN-4")
    assert "fatigue-management" not in codes and version == first.rules_version


def test_a_rule_set_without_an_active_version_is_an_incident_not_a_silent_evaluation(app: CarePath) -> None:
    view = app.instances.start("test_careplan", "SYN-5", "system:ehr", {"age": 54})  # rule sets never synced
    view = app.instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"concerns": {"fatigue": 3}}, "clinician:cns-1"
    )
    assert view.status == "error" and "no active version" in view.incident["message"]


def _evaluated(app: CarePath, patient: str) -> tuple[str, dict[str, str]]:
    """The catalogue version an evaluation used, and the service each proposed referral was sent to."""
    view = app.instances.start("test_careplan", patient, "system:ehr", {"age": 54})
    view = app.instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"concerns": {"worry_fear_anxiety": 9}}, "clinician:cns-1"
    )
    assert view.status == "running", view.incident
    with app.sessions() as session:
        [evaluation] = list_evaluations(session, instance_id=view.id)
        services = {item["intervention"]: item["service"] for item in evaluation.outcomes["referrals"]}
        return evaluation.catalogue_version, services


def test_a_changed_catalogue_is_pending_until_a_second_author_activates_it(app: CarePath) -> None:
    """The concern and intervention catalogue is part of a rule-set version: a changed one (here the service
    an intervention goes to) takes effect only once a second author activates the version that holds it."""
    [first] = app.rule_sets.sync()
    assert first.catalogue_version == app.rules.catalogue().version
    catalogue, services = _evaluated(app, "SYN-10")
    assert catalogue == first.catalogue_version and services[REFERRAL] == "psychological_support"

    interventions = app.settings.rules_dir / "catalogues" / "interventions.yaml"
    text = interventions.read_text()
    moved = f"  {REFERRAL}:\n    kind: referral\n    service: acute_oncology\n"
    interventions.write_text(
        text.replace(f"  {REFERRAL}:\n    kind: referral\n    service: psychological_support\n", moved)
    )
    assert moved in interventions.read_text()
    [pending] = app.rule_sets.sync(ALICE)  # the same rule text, a new catalogue: a new, pending version
    assert (pending.rules_version, pending.active) == (first.rules_version, False)
    assert pending.version != first.version and pending.catalogue_version != first.catalogue_version
    assert _evaluated(app, "SYN-11") == (first.catalogue_version, services)  # the folder's catalogue is not used

    with pytest.raises(FourEyesError):
        app.rule_sets.activate("supportive_care", pending.version, ALICE)
    app.rule_sets.activate("supportive_care", pending.version[:12], BOB)
    catalogue, services = _evaluated(app, "SYN-12")
    assert catalogue == pending.catalogue_version and services[REFERRAL] == "acute_oncology"
    # The activated catalogue is the stored one: the folder moving on again changes nothing.
    interventions.write_text(text.replace("service: psychological_support", "service: dietetics"))
    assert _evaluated(app, "SYN-13") == (pending.catalogue_version, services)


def _signs(app: CarePath) -> tuple[str, str]:
    """The warning signs in use: their catalogue's version, and how long an untriaged emergency may wait."""
    with app.sessions() as session:
        catalogue = warning_signs_in_use(session, app.rules, active_only=app.settings.four_eyes)
    return catalogue.version, catalogue.escalation_bound("no-such-sign")


def test_changed_warning_signs_are_pending_until_a_second_author_activates_them(app: CarePath) -> None:
    """A warning sign's urgency and how long its report may wait for triage decide whether an emergency is
    seen in time: the warning signs are part of the catalogue a rule-set version holds, so a changed file
    is used by triage and by the patient's documents only once a second author activates it."""
    [first] = app.rule_sets.sync()
    before = _signs(app)
    assert before[1] == "PT30M"
    view = app.instances.start("test_careplan", "SYN-20", "system:ehr", {"age": 54})
    names = [s["name"] for s in warning_sign_choices(app, view.id)]

    signs = app.settings.rules_dir / "catalogues" / "warning_signs.yaml"
    text = signs.read_text()
    assert "  emergency: PT30M\n" in text and "name_en: A new lump or swelling anywhere" in text
    signs.write_text(
        text.replace("  emergency: PT30M\n", "  emergency: PT4H\n").replace(
            "name_en: A new lump or swelling anywhere", "name_en: A lump"
        )
    )
    assert _signs(app) == before  # the folder moved on: not what triage uses
    [pending] = app.rule_sets.sync(ALICE)
    assert pending.rules_version == first.rules_version and pending.catalogue_version != first.catalogue_version
    assert _signs(app) == before and [s["name"] for s in warning_sign_choices(app, view.id)] == names
    with pytest.raises(FourEyesError):
        app.rule_sets.activate("supportive_care", pending.version, ALICE)
    app.rule_sets.activate("supportive_care", pending.version, BOB)
    after = _signs(app)
    assert after[0] != before[0] and after[1] == "PT4H"
    assert any(s["name"].startswith("A lump, or a sore") for s in warning_sign_choices(app, view.id))
    signs.write_text(text)  # the activated text is the stored one: the folder moving back changes nothing
    assert _signs(app) == after


def test_broken_warning_signs_are_never_recorded(app: CarePath) -> None:
    [first] = app.rule_sets.sync()
    signs = app.settings.rules_dir / "catalogues" / "warning_signs.yaml"
    signs.write_text(signs.read_text().replace("  emergency: PT30M\n", "  emergency: half an hour\n"))
    with pytest.raises(RuleFileError) as refused:
        app.rule_sets.sync(ALICE)
    assert any(p.file and p.file.endswith("warning_signs.yaml") and p.line for p in refused.value.problems)
    assert [v.version for v in app.rule_sets.versions("supportive_care")] == [first.version]


def _lung_read_as(app: CarePath) -> str:
    """The site an evaluation in a pathway reads "NSCLC" as, with the catalogue in use."""
    with unit_of_work(app.sessions) as session:
        assessment = Assessment({"back_pain": 6}, PatientContext(diagnosis="NSCLC"))
        evaluation = evaluate_and_record(
            session, app.rules, "supportive_care", assessment, clock=app.clock, active_only=True
        )
        return str(evaluation.facts[0]["diagnosis"])


def test_a_changed_diagnoses_vocabulary_is_pending_until_a_second_author_activates_it(app: CarePath) -> None:
    """Which words name which site decides which threshold a patient meets (spinal cord compression): the
    vocabulary is part of the catalogue a rule-set version holds, used only once a second author activates it."""
    [first] = app.rule_sets.sync()
    assert _lung_read_as(app) == "lung"
    vocabulary = app.settings.rules_dir / "catalogues" / "diagnoses.yaml"
    text = vocabulary.read_text()
    assert "abbreviations: [nsclc, sclc]" in text
    vocabulary.write_text(text.replace("abbreviations: [nsclc, sclc]", "abbreviations: [sclc]"))
    [pending] = app.rule_sets.sync(ALICE)
    assert pending.rules_version == first.rules_version and pending.catalogue_version != first.catalogue_version
    assert _lung_read_as(app) == "lung"  # the active version's vocabulary
    with pytest.raises(FourEyesError):
        app.rule_sets.activate("supportive_care", pending.version, ALICE)
    app.rule_sets.activate("supportive_care", pending.version, BOB)
    assert _lung_read_as(app) == "nsclc"
