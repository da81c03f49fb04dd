"""The server reads the same settings as the command line and the worker: every ``CAREPATH_*``
variable ``engine.settings`` knows. (It once read a list of names kept by hand, which left out the
trail key: events written through the API carried no MAC while the operations guide said they did.)"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from api_contract import (
    make_token,  # tests/api is on sys.path
    running_app,
)
from helpers import PATHWAY
from sqlalchemy import select

import engine.settings
from api import create_app
from engine import ManualClock, Settings
from engine.db.models import InstanceEvent
from engine.documents.render import PdfLimits
from engine.settings import bundled_service_directory

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
KEY = "9c0e6b2d4f8a7c5e1b3d9f0a2c4e6b8d0f1a3c5e7b9d3f1a"
# Read by the server too, and tested with their own needs: a replica (tests/test_read_replica.py) and
# an identity provider (tests/api/test_api_identity.py).
ELSEWHERE = re.compile(r"CAREPATH_(READ_DATABASE_URL|OIDC_\w+)$")


def _environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    key = tmp_path / "trail.key"
    key.write_text(KEY + "\n")
    key.chmod(0o400)
    return {
        "CAREPATH_DATABASE_URL": database_url,
        "CAREPATH_PATHWAYS_DIR": str(TESTS / "pathways"),
        "CAREPATH_RULES_DIR": str(ROOT / "rules"),
        "CAREPATH_SERVICE_DIRECTORY": str(shutil.copy(bundled_service_directory(), tmp_path / "services.yaml")),
        "CAREPATH_ENV": "development",
        "CAREPATH_ALLOW_EMPTY_LIBRARY": "1",
        "CAREPATH_ALLOW_EXAMPLE_DIRECTORY": "1",
        "CAREPATH_HEALTH_SYSTEM": "sweden",
        "CAREPATH_ALLOW_CONCURRENT_INSTANCES": "1",
        "CAREPATH_SANDBOX": "1",
        "CAREPATH_FOUR_EYES": "off",
        "CAREPATH_FHIR_PATIENT_IDENTIFIER": "personnummer",
        "CAREPATH_DEFAULT_ORGANISATION": "rx1",
        "CAREPATH_DEFAULT_CARE_TEAM": "breast",
        "CAREPATH_REPORT_MIN_COUNT": "7",
        "CAREPATH_TRAIL_KEY_FILE": str(key),
        "CAREPATH_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "CAREPATH_CHECKPOINT_SECONDS": "600",
        "CAREPATH_VERIFY_JOBS": "2",
        "CAREPATH_WEBHOOK_MAX_ATTEMPTS": "3",
        "CAREPATH_WEBHOOK_TIMEOUT_SECONDS": "2.5",
        "CAREPATH_WEBHOOK_FIRST_RETRY_SECONDS": "30",
        "CAREPATH_WEBHOOK_LONGEST_RETRY_SECONDS": "600",
        "CAREPATH_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1",
        "CAREPATH_REFERRAL_TIMEFRAMES": "urgent=3wd,routine=8w",
        "CAREPATH_TIME_ZONE": "Europe/London",
        "CAREPATH_HOLIDAYS": "2026-12-25,2026-12-28",
        "CAREPATH_STATEMENT_TIMEOUT": "12",
        "CAREPATH_DATABASE_CONNECT_TIMEOUT": "4",
        "CAREPATH_PDF_TIMEOUT": "7.5",
        "CAREPATH_PDF_MEMORY_MB": "768",
    }


def test_the_server_reads_every_setting_the_command_line_reads(
    deployed_database_url: str, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = _environment(deployed_database_url, tmp_path)
    known = set(re.findall(r"CAREPATH_[A-Z_]*[A-Z](?![A-Z_])", Path(engine.settings.__file__).read_text()))
    assert {name for name in known if not ELSEWHERE.match(name)} == set(environment)  # a new setting: add it here
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    app = create_app({"TESTING": True, "CLOCK": clock})
    carepath = app.extensions["carepath"]
    try:
        assert carepath.settings == Settings.from_env(environment)
        assert carepath.settings.trail_key_file is not None and carepath.settings.verify_jobs == 2

        # What the key is for: an event written through the API carries its MAC.
        system = {"Authorization": f"Bearer {make_token(app, 'system')}"}
        started = app.test_client().post(
            "/v1/instances", json={"pathway_id": PATHWAY, "patient_ref": "SYN-1001"}, headers=system
        )
        assert started.status_code == 201, started.json
        with carepath.sessions() as session:
            macs = session.scalars(select(InstanceEvent.mac).where(InstanceEvent.instance_id == started.json["id"]))
            assert [mac is not None for mac in macs] == [True]
    finally:
        app.extensions["carepath.jobs"].wait()
        carepath.close()


def test_a_setting_given_in_the_configuration_wins_over_the_environment(
    deployed_database_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_WEBHOOK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("CAREPATH_TIME_ZONE", "Europe/London")
    app = create_app(
        {
            "TESTING": True,
            "CLOCK": clock,
            "DATABASE_URL": deployed_database_url,
            "PATHWAYS_DIR": TESTS / "pathways",
            "FOUR_EYES": False,
            "WEBHOOK_MAX_ATTEMPTS": 5,
        }
    )
    try:
        settings = app.extensions["carepath"].settings
        assert (settings.webhook_max_attempts, settings.referral_timeframes.time_zone) == (5, "Europe/London")
        assert settings.four_eyes is False
    finally:
        app.extensions["carepath"].close()


def test_production_without_a_trail_key_or_trusted_hosts_is_warned_about(
    deployed_database_url: str, clock: ManualClock, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    def start(**config: object) -> list[str]:
        caplog.clear()
        app = create_app(
            {
                "TESTING": True,
                "CLOCK": clock,
                "DATABASE_URL": deployed_database_url,
                "PATHWAYS_DIR": TESTS / "pathways",
                "ENV": "production",
                "ALLOW_EXAMPLE_DIRECTORY": True,  # the bundled directory: example numbers
                "DEFAULT_ORGANISATION": "rx1",
                "DEFAULT_CARE_TEAM": "breast",
                **config,
            }
        )
        app.extensions["carepath"].close()
        return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]

    assert any(m.startswith("no CAREPATH_TRAIL_KEY_FILE") for m in start())
    key = tmp_path / "trail.key"
    key.write_text(KEY)
    key.chmod(0o400)
    assert not any("TRAIL_KEY" in m for m in start(TRAIL_KEY_FILE=str(key)))
    assert any(m.startswith("no CAREPATH_TRUSTED_HOSTS") for m in start())
    assert not any("TRUSTED_HOSTS" in m for m in start(TRUSTED_HOSTS=["carepath.test"]))


@pytest.mark.parametrize(
    "variable",
    [
        "CAREPATH_STATEMENT_TIMEOUT",
        "CAREPATH_DATABASE_CONNECT_TIMEOUT",
        "CAREPATH_WEBHOOK_TIMEOUT_SECONDS",
        "CAREPATH_WEBHOOK_FIRST_RETRY_SECONDS",
        "CAREPATH_WEBHOOK_LONGEST_RETRY_SECONDS",
        "CAREPATH_CHECKPOINT_SECONDS",
        "CAREPATH_PDF_TIMEOUT",
    ],
)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_number_of_seconds_must_be_finite(variable: str, value: str) -> None:
    """``float()`` reads "nan" and "inf", and every comparison with NaN is false, so a NaN timeout passed
    the range checks: on PostgreSQL every request then failed turning it into milliseconds. Refused at start,
    naming the setting."""
    with pytest.raises(ValueError, match=variable):
        Settings.from_env({variable: value})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CAREPATH_PDF_TIMEOUT", "0"),
        ("CAREPATH_PDF_TIMEOUT", "-1"),
        ("CAREPATH_PDF_TIMEOUT", "301"),
        ("CAREPATH_PDF_TIMEOUT", "soon"),
        ("CAREPATH_PDF_MEMORY_MB", "100"),
        ("CAREPATH_PDF_MEMORY_MB", "65537"),
        ("CAREPATH_PDF_MEMORY_MB", "1.5"),
    ],
)
def test_the_pdf_limits_are_a_bounded_time_and_memory(variable: str, value: str) -> None:
    """Below 384 MB no document renders (the interpreter, WeasyPrint and Pango's threads take ~300 MB of
    address space); no PDF may hold a request for more than 5 minutes."""
    with pytest.raises(ValueError, match=variable):
        Settings.from_env({variable: value})


def test_the_pdf_limits_default_to_those_the_renderer_applies_without_settings() -> None:
    assert PdfLimits.of(Settings.from_env({})) == PdfLimits() == PdfLimits(20.0, 1024)
    assert PdfLimits.of(Settings.from_env({"CAREPATH_PDF_TIMEOUT": "7.5", "CAREPATH_PDF_MEMORY_MB": "768"})) == (
        PdfLimits(7.5, 768)
    )


def test_with_trusted_hosts_a_request_naming_another_host_is_refused(
    deployed_database_url: str, clock: ManualClock
) -> None:
    """The Host header names this server in FHIR links (``fullUrl``) and in the sign-in callback when
    CAREPATH_OIDC_REDIRECT_URL is unset. With CAREPATH_TRUSTED_HOSTS a request naming any other host is a
    400, before any view runs; one naming a trusted host is served and its links name it."""
    with running_app(deployed_database_url, clock, TRUSTED_HOSTS=["carepath.test"]) as app:
        client = app.test_client()
        refused = client.get("/v1/health", headers={"Host": "evil.example"})
        assert refused.status_code == 400
        assert refused.json["type"].endswith("/host-not-trusted") and "evil.example" not in refused.text
        assert client.get("/v1/health", headers={"Host": "carepath.test"}).status_code == 200
        token = make_token(app, "clinician")
        bundle = client.get(
            "/fhir/R4/Questionnaire", headers={"Host": "carepath.test", "Authorization": f"Bearer {token}"}
        )
        assert bundle.status_code == 200
        assert bundle.json["entry"] and all(
            e["fullUrl"].startswith("http://carepath.test/fhir/R4/") for e in bundle.json["entry"]
        )
