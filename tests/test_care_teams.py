"""Care teams in the engine (engine.care_teams): where an instance is placed at start, what a scope reaches,
the break-glass reasons, and the settings that configure them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from engine import CarePath, ManualClock
from engine.care_teams import EVERYWHERE, NOWHERE, BreakGlass, CareScope, placement
from engine.db.session import read_only, upgrade_schema
from engine.errors import InvalidInputError
from engine.settings import OidcSettings, Settings
from tests.old_rows import insert_pathway_version

TESTS = Path(__file__).resolve().parent


def test_a_start_is_placed_as_asked_or_by_the_deployment_default(carepath: CarePath) -> None:
    asked = carepath.instances.start(
        "test_assessment", "MRN-CT-1", "system:test", organisation="rx1", care_team="breast"
    )
    assert (asked.organisation, asked.care_team) == ("rx1", "breast")
    default = carepath.instances.start("test_assessment", "MRN-CT-2", "system:test")
    assert (default.organisation, default.care_team) == ("local", "general")  # development's defaults
    with pytest.raises(InvalidInputError) as refused:
        carepath.instances.start("test_assessment", "MRN-CT-3", "system:test", care_team="Dr Who's team")
    assert refused.value.problems[0].field == "/care_team"
    with read_only(carepath.sessions) as session:
        found = placement(session, "instance", asked.id)
        assert placement(session, "instance", "00000000-0000-4000-8000-000000000000") is None
        with pytest.raises(KeyError):  # a kind nobody decided on is an error, never "no owner"
            placement(session, "webhook", asked.id)
    assert found is not None and (found.organisation, found.care_team) == ("rx1", "breast")


def test_a_composition_is_placed_with_its_instance_whichever_document_it_is(carepath: CarePath) -> None:
    """An End of Treatment Summary's Composition (eot-<id>, eot-<id>-<phase>) and an active surveillance plan's
    (asp-<id>) are where their instance is: a caller outside its team never reads them."""
    view = carepath.instances.start("test_assessment", "MRN-CT-4", "system:test", organisation="rx1", care_team="uro")
    with read_only(carepath.sessions) as session:
        for key in (f"eot-{view.id}", f"eot-{view.id}-2", f"asp-{view.id}"):
            found = placement(session, "composition", key)
            assert found is not None and (found.organisation, found.care_team) == ("rx1", "uro"), key
        assert placement(session, "composition", "asp-00000000-0000-4000-8000-000000000000") is None


def test_production_names_the_team_unless_a_default_is_configured(
    deployed_database_url: str, clock: ManualClock
) -> None:
    settings = Settings(database_url=deployed_database_url, pathways_dir=TESTS / "pathways", environment="production")
    engine = CarePath(settings, clock)
    try:
        with pytest.raises(InvalidInputError) as refused:
            engine.instances.start("test_assessment", "MRN-CT-4", "system:test")
        assert {p.field for p in refused.value.problems} == {"/organisation"}
        placed = engine.instances.start(
            "test_assessment", "MRN-CT-4", "system:test", organisation="rx1", care_team="lung"
        )
        assert placed.care_team == "lung"
    finally:
        engine.close()
    configured = Settings.from_env(
        {"CAREPATH_ENV": "production", "CAREPATH_DEFAULT_ORGANISATION": "rx1", "CAREPATH_DEFAULT_CARE_TEAM": "oncology"}
    )
    assert configured.care_team_default() == ("rx1", "oncology")
    assert Settings(environment="production").care_team_default() == (None, None)
    with pytest.raises(ValueError, match="CAREPATH_DEFAULT_CARE_TEAM"):
        Settings.from_env({"CAREPATH_DEFAULT_CARE_TEAM": "the breast team"})


def test_a_scope_covers_its_teams_its_organisation_or_everything() -> None:
    team = CareScope("rx1", frozenset({"breast", "lung"}))
    assert team.covers("rx1", "lung") and not team.covers("rx1", "skin") and not team.covers("rx2", "lung")
    assert team.organisation_wide().covers("rx1", "skin") and not team.organisation_wide().covers("rx2", "skin")
    assert EVERYWHERE.covers("rx2", "skin") and EVERYWHERE.everywhere
    assert not NOWHERE.covers("", "") and not NOWHERE.covers("rx1", "breast")
    assert str(NOWHERE.condition()) == "false"
    with pytest.raises(ValueError):
        CareScope(None, frozenset({"breast"}))


@pytest.mark.parametrize(
    ("reason", "note"), [("curiosity", None), ("emergency-care", "x" * 501), ("emergency-care", "line\nbreak")]
)
def test_break_glass_needs_a_listed_reason_and_a_short_note(reason: str, note: str | None) -> None:
    with pytest.raises(InvalidInputError):
        BreakGlass(reason, note)


def test_a_persons_teams_come_from_configurable_claims() -> None:
    settings = OidcSettings.from_env(
        {
            "CAREPATH_OIDC_ISSUER": "https://id.example.org/realms/x",
            "CAREPATH_OIDC_AUDIENCE": "carepath-api",
            "CAREPATH_OIDC_ORGANISATION_CLAIM": "org.ods_code",
            "CAREPATH_OIDC_TEAMS_CLAIM": "groups",
            "CAREPATH_OIDC_ORGANISATION": "RX1",
        }
    )
    assert settings is not None
    assert (settings.organisation_claim, settings.teams_claim, settings.organisation) == (
        "org.ods_code",
        "groups",
        "RX1",
    )
    with pytest.raises(ValueError, match="CAREPATH_OIDC_TEAMS_CLAIM"):
        OidcSettings(issuer="https://id.example.org", audience="a", teams_claim="not a claim!")


@pytest.mark.parametrize(
    "configured", [{}, {"CAREPATH_DEFAULT_ORGANISATION": "RX1", "CAREPATH_DEFAULT_CARE_TEAM": "oncology"}]
)
def test_migration_0012_places_existing_instances(
    database_url: str, monkeypatch: pytest.MonkeyPatch, configured: dict[str, str]
) -> None:
    """Instances from before care teams go to the configured defaults (else local / general); later
    instances must be placed by the engine (no database default on PostgreSQL)."""
    for name, value in configured.items():
        monkeypatch.setenv(name, value)
    upgrade_schema(database_url, "0011")
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            insert_pathway_version(connection)
            connection.execute(
                text(
                    "INSERT INTO pathway_instances (id, pathway_id, pathway_version_id, patient_ref, status, state, "
                    "revision, event_seq, event_head, created_at, updated_at) VALUES (:id, 'p', 1, 'MRN-1', "
                    "'running', '{}', 1, 0, :head, :at, :at)"
                ),
                {"id": "00000000-0000-4000-8000-000000000001", "head": "0" * 64, "at": "2026-01-01"},
            )
        upgrade_schema(database_url)
        with engine.connect() as connection:
            placed = connection.execute(text("SELECT organisation, care_team FROM pathway_instances")).one()
            tokens = connection.execute(text("SELECT count(*) FROM api_tokens WHERE organisation IS NULL")).scalar()
        expected = (
            configured.get("CAREPATH_DEFAULT_ORGANISATION", "local"),
            configured.get("CAREPATH_DEFAULT_CARE_TEAM", "general"),
        )
        assert tuple(placed) == expected and tokens == 0
        if engine.dialect.name == "postgresql":
            with pytest.raises(IntegrityError), engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO pathway_instances (id, pathway_id, pathway_version_id, patient_ref, status, "
                        "state, "
                        "revision, event_seq, event_head, created_at, updated_at) VALUES (:id, 'p', 1, 'MRN-2', "
                        "'running', '{}', 1, 0, :head, :at, :at)"
                    ),
                    {"id": "00000000-0000-4000-8000-000000000002", "head": "0" * 64, "at": "2026-01-01"},
                )
    finally:
        engine.dispose()
