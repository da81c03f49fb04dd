"""The pathway check's reading of a diagnosis (engine.pathway_checks); over HTTP and on the
web pages: tests/api/test_api_pathway_checks.py, tests/web/test_manage_pages.py, tests/web/test_start_pages.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.pathway_checks import confirmation_problem, pathway_check
from engine.rules.catalogue import load_catalogue
from engine.settings import bundled_rules_dir

VOCABULARY = load_catalogue(bundled_rules_dir() / "catalogues").diagnoses


@pytest.mark.parametrize(
    ("pathway_id", "diagnosis", "site"),
    [
        ("breast_cancer", "Non-small cell lung cancer", "lung"),
        ("breast_cancer", "C61", "prostate"),
        ("lung_cancer", "Bowel cancer", "colorectal"),
        ("breast_cancer", "Invasive ductal carcinoma", None),  # no site named: the pathway's own
        ("breast_cancer", "Lung metastases from breast cancer", None),  # two: which is primary is not told
        ("breast_cancer", "C50", None),
        ("general_cancer", "Non-small cell lung cancer", None),  # a pathway of no site
        ("children_young_people_cancer", "Acute lymphoblastic leukaemia", None),
        ("breast_cancer", None, None),
        ("breast_cancer", 42, None),
    ],
)
def test_a_diagnosis_asks_for_a_check_only_when_it_names_one_other_site(
    pathway_id: str, diagnosis: Any, site: str | None
) -> None:
    check = pathway_check(VOCABULARY, pathway_id, {"diagnosis": diagnosis})
    assert (check.site.code if check else None) == site
    if check is not None:
        warning = check.as_warning()
        assert warning["pathway_site"] == pathway_id.removesuffix("_cancer") and str(diagnosis) not in str(warning)


def test_a_confirmation_must_name_the_site_the_diagnosis_names() -> None:
    check = pathway_check(VOCABULARY, "breast_cancer", {"diagnosis": "NSCLC"})
    assert confirmation_problem(check, "lung", "/site") is None
    wrong = confirmation_problem(check, "prostate", "/site")
    assert wrong is not None and wrong.field == "/site" and "lung" not in wrong.message  # no patient data
    nothing = confirmation_problem(None, "lung", "/confirm_other_site")
    assert nothing is not None and nothing.field == "/confirm_other_site"


def test_the_quick_reading_of_a_stored_state_finds_a_diagnosis_at_any_depth_and_survives_any_bytes() -> None:
    from engine.db.stored_state import encode_state
    from engine.pathway_checks import _names_another_site

    def stored(value: Any) -> bytes:
        return encode_state(json.dumps(value))

    nested = {"tasks": {"a": {"data": {"updates": [{"x": 1}, {"diagnosis": "Non-small cell lung cancer"}]}}}}
    assert _names_another_site(VOCABULARY, "breast_cancer", stored(nested))
    assert not _names_another_site(VOCABULARY, "lung_cancer", stored(nested))  # the pathway's own site
    assert not _names_another_site(VOCABULARY, "general_cancer", stored(nested))
    assert not _names_another_site(VOCABULARY, "breast_cancer", stored({"data": {"diagnosis": ["C34"]}}))
    quoted = {"note": 'written as "diagnosis": "Non-small cell lung cancer"', "diagnosis": "Breast cancer"}
    assert not _names_another_site(VOCABULARY, "breast_cancer", stored(quoted))  # text inside a string is not a key
    spaced = encode_state('{"a": [{"diagnosis" :  "C34.1"}]}')
    assert _names_another_site(VOCABULARY, "breast_cancer", spaced)
    deep = "[" * 100_000 + "]" * 100_000  # past any parser's nesting: names nothing, raises nothing
    for hostile in (b"", None, b"\xffnot a state", encode_state(deep), encode_state("{not json")):
        assert not _names_another_site(VOCABULARY, "breast_cancer", hostile)


def test_migration_0036_leaves_the_reading_only_where_instances_have_not_ended(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine, text

    from engine.db.session import alembic_config, upgrade_schema
    from tests.old_rows import insert_pathway_version

    def tasks(url: str) -> list[tuple[str, Any]]:
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.execute(text("SELECT name, done_at FROM upgrade_tasks"))]
        finally:
            engine.dispose()

    upgrade_schema(database_url, "0035")
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            insert_pathway_version(connection, "breast_cancer")
            connection.execute(
                text(
                    "INSERT INTO pathway_instances (id, pathway_id, pathway_version_id, patient_ref, status, state, "
                    "revision, event_seq, event_head, created_at, updated_at, organisation, care_team) VALUES "
                    "(:id, 'breast_cancer', 1, 'SYN-1', :status, '{}', 1, 0, :head, :at, :at, 'org', 'team')"
                ),
                {
                    "id": "00000000-0000-4000-8000-000000000001",
                    "status": "completed",
                    "head": "0" * 64,
                    "at": "2026-01-01",
                },
            )
    finally:
        engine.dispose()
    upgrade_schema(database_url, "0036")
    assert tasks(database_url) == []  # every instance has ended: nothing to read
    command.downgrade(alembic_config(database_url), "0035")  # and back: the table goes
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE pathway_instances SET status = 'suspended'"))
    finally:
        engine.dispose()
    upgrade_schema(database_url)
    assert tasks(database_url) == [("read_diagnoses", None)]
