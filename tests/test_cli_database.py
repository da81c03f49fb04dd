"""The command line as a new user runs it (issue 17, point 6): one default database wherever a command is
run, every command that opens a database names it, ``token list``, and ``rules explain`` on a real
database through the ``carepath`` group (it used to fail outside the tests: nothing gave it a session)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from api.cli import main
from api.cli_rules import redacted_url
from engine import CarePath, ManualClock
from engine.access import ApiToken, create_token, list_tokens, parse_lifetime, principal_of_token
from engine.care_teams import EVERYWHERE, CareScope
from engine.db.models import CarePlanItem
from engine.db.session import unit_of_work
from engine.settings import Settings, default_data_dir, default_database_url


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder of the test's own: nothing is written to the real one."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("CAREPATH_DATABASE_URL", raising=False)
    return folder


def test_the_default_database_does_not_depend_on_the_folder(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = f"sqlite:///{home / '.local' / 'share' / 'carepath' / 'carepath.sqlite3'}"
    for folder in (tmp_path, home, tmp_path / "elsewhere"):
        folder.mkdir(exist_ok=True)
        monkeypatch.chdir(folder)
        assert default_database_url() == expected
        assert Settings().database_url == expected
        assert Settings.from_env({}).database_url == expected
    assert not (home / ".local").exists()  # computing it creates nothing
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_data_dir() == tmp_path / "data" / "carepath"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")  # invalid per the XDG specification: ignored
    assert default_data_dir() == home / ".local" / "share" / "carepath"
    # The environment still wins.
    assert Settings.from_env({"CAREPATH_DATABASE_URL": "sqlite:///x.db"}).database_url == "sqlite:///x.db"


def test_commands_from_two_folders_meet_one_database(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    created = runner.invoke(main, ["token", "create", "--role", "auditor", "--label", "first"])
    assert created.exit_code == 0, created.output
    database = home / ".local" / "share" / "carepath" / "carepath.sqlite3"
    assert f"database: sqlite:///{database}" in created.stderr
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    listed = runner.invoke(main, ["token", "list"])
    assert listed.exit_code == 0, listed.output
    assert "first" in listed.stdout
    assert not (tmp_path / "instance").exists() and not (elsewhere / "instance").exists()


def test_token_list_shows_no_secret(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    runner = CliRunner()
    secrets = []
    for role, label in (("system", "EHR integration"), ("auditor", "audit team")):
        result = runner.invoke(main, ["token", "create", "--role", role, "--label", label])
        assert result.exit_code == 0, result.output
        secrets.append(result.stdout.strip())
    app = CarePath(Settings(database_url=database_url))
    try:
        with app.sessions() as session:
            tokens = {t.label: (t.id, t.secret_sha256) for t in session.scalars(select(ApiToken))}
    finally:
        app.close()
    revoked = runner.invoke(main, ["token", "revoke", tokens["audit team"][0]])
    assert revoked.exit_code == 0, revoked.output

    listed = runner.invoke(main, ["token", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["id", "role", "created", "expires", "revoked", "scope", "label"]
    assert len(lines) == 2 and lines[1].split()[:2] == [tokens["EHR integration"][0], "system"]
    assert lines[1].endswith("EHR integration")
    every = runner.invoke(main, ["token", "list", "--all"]).stdout
    assert tokens["audit team"][0] in every and "audit team" in every
    for secret, digest in zip(secrets, (d for _, d in tokens.values()), strict=True):
        assert secret not in every + listed.stderr and digest not in every


def test_a_token_can_be_given_a_lifetime(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    runner = CliRunner()
    created = runner.invoke(main, ["token", "create", "--role", "system", "--label", "EHR", "--expires-in", "P90D"])
    assert created.exit_code == 0, created.output
    forever = runner.invoke(main, ["token", "create", "--role", "auditor", "--label", "audit"])
    assert forever.exit_code == 0, forever.output
    app = CarePath(Settings(database_url=database_url))
    try:
        with app.sessions() as session:
            stored = {t.label: t for t in session.scalars(select(ApiToken))}
    finally:
        app.close()
    assert stored["EHR"].expires_at - stored["EHR"].created_at == timedelta(days=90)
    assert stored["audit"].expires_at is None
    assert f"expires {stored['EHR'].expires_at.isoformat(timespec='minutes')}" in created.stderr
    listed = runner.invoke(main, ["token", "list"]).stdout.splitlines()
    row = next(line for line in listed if line.startswith(stored["EHR"].id))
    assert row.split()[3] == stored["EHR"].expires_at.isoformat(timespec="seconds")
    assert next(line for line in listed if line.startswith(stored["audit"].id)).split()[3] == "never"


def test_a_token_can_be_given_an_organisation_and_teams(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    runner = CliRunner()
    created = runner.invoke(
        main,
        [
            "token",
            "create",
            "--role",
            "clinician",
            "--label",
            "ward",
            "--organisation",
            "rx1",
            "--team",
            "breast",
            "--team",
            "lung",
        ],
    )
    assert created.exit_code == 0, created.output
    everywhere = runner.invoke(main, ["token", "create", "--role", "system", "--label", "dev"])
    assert everywhere.exit_code == 0, everywhere.output
    app = CarePath(Settings(database_url=database_url))
    try:
        with app.sessions() as session:
            stored = {t.label: principal_of_token(t) for t in session.scalars(select(ApiToken))}
    finally:
        app.close()
    assert stored["ward"].scope == CareScope("rx1", frozenset({"breast", "lung"}))
    assert stored["dev"].scope == EVERYWHERE  # made without an organisation: every organisation, as before
    listed = runner.invoke(main, ["token", "list"]).stdout.splitlines()
    assert next(line for line in listed if line.endswith("ward")).split()[5] == "rx1:breast,lung"
    assert next(line for line in listed if line.endswith("dev")).split()[5] == "*"
    for refused, hint in (
        (["--team", "breast"], "--organisation"),
        (["--organisation", "a b"], "--organisation"),
        (["--organisation", "rx1", "--team", "Dr Smith's"], "--team"),
    ):
        result = runner.invoke(main, ["token", "create", "--role", "clinician", *refused])
        assert result.exit_code == 2 and hint in result.output, result.output


@pytest.mark.parametrize("lifetime", ["P1Y", "P3M", "90D", "P0D", "PT", "P", "P99999W", "-P1D", "P1.5D"])
def test_a_lifetime_must_be_weeks_days_hours_or_minutes(
    database_url: str, monkeypatch: pytest.MonkeyPatch, lifetime: str
) -> None:
    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["token", "create", "--role", "system", "--expires-in", lifetime])
    assert result.exit_code == 2 and "--expires-in" in result.output, result.output


def test_lifetimes_that_are_understood() -> None:
    assert parse_lifetime("P90D") == timedelta(days=90)
    assert parse_lifetime("p12w") == timedelta(weeks=12)
    assert parse_lifetime("P1DT12H") == timedelta(days=1, hours=12)
    assert parse_lifetime("PT30M") == timedelta(minutes=30)


def test_expired_tokens_are_listed_only_with_all(database_url: str, clock: ManualClock) -> None:
    app = CarePath(Settings(database_url=database_url), clock, upgrade=True)
    try:
        with unit_of_work(app.sessions) as session:
            expiring, _ = create_token(session, "system", "short", clock, timedelta(days=1))
            lasting, _ = create_token(session, "system", "long", clock)
        clock.advance(timedelta(days=1))
        with app.sessions() as session:
            live = [t.id for t in list_tokens(session, include_revoked=False, now=clock.now())]
            every = [t.id for t in list_tokens(session)]
    finally:
        app.close()
    assert live == [lasting] and sorted(every) == sorted([expiring, lasting])


@pytest.mark.parametrize(
    "command",
    [
        ["db", "upgrade"],
        ["token", "list"],
        ["audit", "verify"],
        ["pathways", "deploy"],
        ["migrate", "no_such_pathway"],
        ["rules", "explain", "no-such-evaluation", "--why", "x"],
    ],
)
def test_every_command_that_opens_the_database_names_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("CAREPATH_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREPATH_PATHWAYS_DIR", str(Path(__file__).parent / "pathways"))
    result = CliRunner().invoke(main, command)
    assert result.stderr.splitlines()[0] == f"database: {redacted_url(database_url)}", result.output


def test_the_database_line_never_shows_a_password() -> None:
    assert (
        redacted_url("postgresql+psycopg://carepath:s3cret@db-host:5432/carepath")
        == "postgresql+psycopg://***@db-host:5432/carepath"
    )
    assert (
        redacted_url("sqlite:////var/lib/carepath/carepath.sqlite3") == "sqlite:////var/lib/carepath/carepath.sqlite3"
    )


def test_rules_explain_runs_on_the_configured_database(carepath: CarePath, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real ``carepath`` group and its settings, as a user runs it."""
    view = carepath.instances.start("test_careplan", "MRN-CLI-1", "system:test", {"age": 54})
    carepath.instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"concerns": {"worry_fear_anxiety": 9}}, "clinician:test"
    )
    with carepath.sessions() as session:
        item = session.scalars(select(CarePlanItem).where(CarePlanItem.instance_id == view.id)).first()
        assert item is not None
        evaluation, code = item.evaluation_id, item.code
    monkeypatch.setenv("CAREPATH_DATABASE_URL", carepath.settings.database_url)
    runner = CliRunner()
    why = runner.invoke(main, ["rules", "explain", evaluation, "--why", code])
    assert why.exit_code == 0, why.output
    assert f"'{code}' was proposed by" in why.stdout
    assert why.stderr.startswith("database: ")
    why_not = runner.invoke(main, ["rules", "explain", evaluation, "--why-not", code])
    assert why_not.exit_code == 0, why_not.output
    assert f"'{code}' WAS proposed: ask why instead." in why_not.stdout
    assert "--" not in why_not.stdout  # the text is shown by the API too: no command-line flags in it
    missing = runner.invoke(main, ["rules", "explain", "0" * 8, "--why", code])
    assert missing.exit_code == 1 and "no rule evaluation with id" in missing.output
