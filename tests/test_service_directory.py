"""The deployment's service directory (issue 15, point 1): the names and numbers documents print.

The bundled one is example data, entry by entry; a file is checked at load with every problem
located; a server in production mode refuses example data unless told otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path

import flask
import pytest
import yaml
from click.testing import CliRunner

from api import create_app
from api.cli import main
from engine.directory import (
    ExampleDirectoryError,
    load_service_directory,
    parse_service_directory,
    phone_problem,
    require_service_directory,
)
from engine.errors import RuleFileError
from engine.settings import Settings, bundled_service_directory

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"

# A real (not example) directory, one health system, every section: the smallest complete file.
REAL = """\
example: false
england:
  emergency_number: "999"
  twenty_four_hour_line: {name_en: Acute oncology line, name_sv: Akutonkologisk linje, phone: "0191 555 0100",
                          hours: always}
  teams:
    ONC: {name_en: Oncology, name_sv: Onkologi, hospital: H1, phone: "0191 555 0110",
          hours: {days: weekdays, from: "08:00", to: "16:00"}}
  hospitals:
    H1: {kind: cancer_centre, name: North Hospital, phone: "0191 555 0000"}
  staff:
    S1: {name: Pat Nurse, role: clinical_nurse_specialist, team: ONC, direct_line: "0191 555 0111",
         hours: {days: weekdays, from: "08:00", to: "16:00"}}
  services:
    dietetics: {name: Dietitians, phone: "0191 555 0120"}
"""


def test_the_bundled_directory_is_example_data_entry_by_entry() -> None:
    path = bundled_service_directory()
    assert path == Settings().service_directory and path.is_file()
    directory = load_service_directory(path)
    assert directory.example is True and set(directory.systems) == {"england", "sweden"}
    services = yaml.safe_load((REPO / "rules" / "catalogues" / "services.yaml").read_text(encoding="utf-8"))
    service_types = set(services["service_types"]) - {"key_worker"}
    for system in directory.systems.values():
        entries = [
            system.twenty_four_hour_line,
            *system.hospitals.values(),
            *system.teams.values(),
            *(c for t in system.teams.values() for c in t.contacts),
            *system.staff.values(),
            *system.gp_practices.values(),
            *system.services.values(),
            *system.organisations.values(),
        ]
        assert entries and all(e.example for e in entries)
        # Every number reaches nobody: the ranges Ofcom and PTS reserve for drama and fiction.
        for entry in entries:
            if entry.phone:
                digits = re.sub(r"\D", "", entry.phone)
                assert digits.startswith(("01632960", "08465004", "03139006")), (entry.code, entry.phone)
        assert set(system.services) >= service_types, sorted(service_types - set(system.services))
        assert system.urgent_advice is not None and system.urgent_advice.example is False  # NHS 111, 1177: real
    sweden = directory.systems["sweden"]
    kinds = {h.kind for h in sweden.hospitals.values()}
    assert {"local_hospital", "childrens_cancer_centre"} <= kinds  # hemsjukhus, barncancercentrum
    assert {c.role for t in sweden.teams.values() for c in t.contacts} >= {
        "doctor",
        "social_worker",
        "rehabilitation_coordinator",
    }
    assert "Barncancerfonden" in {o.name_sv for o in sweden.organisations.values()}
    # The section is the patient's or the deployment's, never the reader's language's.
    england = directory.systems["england"]
    assert (directory.for_deployment(), directory.for_deployment("sweden")) == (england, sweden)
    assert directory.for_patient({"health_system": "sweden"}, "england") == sweden  # the instance's own first
    assert directory.for_patient({}, "sweden") == sweden  # then the deployment's
    assert directory.for_patient({"gp_practice": "EXAMPLE-GP-1"}) == england  # in both sections: the first
    # A pathway without a start schema takes any data: values that are not text name no entry.
    odd = {"gp_practice": ["EXAMPLE-GP-1"], "local_hospital": {"a": 1}, "named_contact": {"staff_ref": [1]}}
    assert directory.for_patient(odd) == england


def test_a_real_directory_loads_and_serves_every_language() -> None:
    directory = parse_service_directory(REAL, "real.yaml")
    assert directory.example is False and list(directory.systems) == ["england"]
    assert directory.for_deployment("sweden").key == "england"  # the one section there is
    assert directory.for_patient({"health_system": "sweden"}, "sweden").key == "england"
    nurse = directory.systems["england"].staff["S1"]
    assert (nurse.name_en, nurse.phone, nurse.team, nurse.example) == ("Pat Nurse", "0191 555 0111", "ONC", False)


def test_every_problem_is_reported_with_its_line() -> None:
    text = (
        REAL.replace('phone: "0191 555 0120"', 'phone: "TBC"')
        .replace('direct_line: "0191 555 0111"', 'direct_line: "0000 000000"')
        .replace('phone: "0191 555 0110"', 'phone: "01632 960110"')
        .replace("team: ONC", "team: ONCO")
        .replace("hours: always}", 'hours: {days: weekdays, from: "08:00", to: "16:00"}}')
        .replace("name: North Hospital", "nmae: North Hospital")
        + '  gp_practices:\n    GP1: {example: true, name: Surgery, phone: "0191 555 0200"}\n'
    )
    with pytest.raises(RuleFileError) as raised:
        parse_service_directory(text, "broken.yaml")
    found = {(p.line, p.message) for p in raised.value.problems}
    assert all(p.file == "broken.yaml" and p.line and p.column for p in raised.value.problems)
    messages = "\n".join(m for _, m in sorted(found))
    for expected in (
        "'TBC' is not a phone number",
        "'0000 000000' is a placeholder",
        "'01632 960110' is in a range reserved for drama and fiction",
        "unknown team 'ONCO'",
        "did you mean 'ONC'",
        "the 24-hour line must have hours: always",
        "unknown field 'nmae'",
        "marked example: true in a directory that is not example data",
    ):
        assert expected in messages, (expected, messages)
    lines = {m.split("'")[1]: line for line, m in found if m.startswith("'")}
    assert lines["TBC"] == 15 and lines["0000 000000"] == 12


def test_example_data_marks_every_entry_and_the_file_needs_a_system() -> None:
    unmarked = REAL.replace("example: false", "example: true")
    with pytest.raises(RuleFileError) as raised:
        parse_service_directory(unmarked, "x.yaml")
    assert {p.element for p in raised.value.problems} >= {"S1", "ONC", "H1", "dietetics"}
    assert all("needs example: true" in p.message for p in raised.value.problems)
    with pytest.raises(RuleFileError, match="needs a section for at least one health system"):
        parse_service_directory("example: false\n", "empty.yaml")
    with pytest.raises(RuleFileError, match="not valid YAML"):
        parse_service_directory("example: [", "bad.yaml")


@pytest.mark.parametrize(
    ("phone", "ok"),
    [
        ("01632 960100", True),
        ("+46 8 465 004 00", True),
        ("999", False),
        ("1177", True),
        ("TBC", False),
        ("xxxx xxx", False),
        ("12", False),
        ("0000", False),
        ("(0191) 555-0100", True),
        ("0191 555 0100 ext 2", False),
    ],
)
def test_what_counts_as_a_phone_number(phone: str, ok: bool) -> None:
    assert (phone_problem(phone) is None) is ok
    assert phone_problem("999", national=True) is None


def test_production_refuses_example_data_unless_told(tmp_path: Path) -> None:
    assert require_service_directory(Settings()).example  # development: fine
    with pytest.raises(ExampleDirectoryError, match="is example data .* CAREPATH_ENV is production"):
        require_service_directory(Settings(environment="production"))
    assert require_service_directory(Settings(environment="production", allow_example_directory=True)).example
    real = tmp_path / "directory.yaml"
    real.write_text(REAL, encoding="utf-8")
    settings = Settings(environment="production", service_directory=real)
    assert require_service_directory(settings, {"dietetics", "key_worker"}).example is False
    with pytest.raises(ExampleDirectoryError, match="no provider and number .* england: lymphoedema"):
        require_service_directory(settings, {"dietetics", "lymphoedema"})
    with pytest.raises(RuleFileError, match="cannot be loaded"):
        require_service_directory(Settings(service_directory=tmp_path / "missing.yaml"))


def test_settings_read_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CAREPATH_ENV": "Production",
            "CAREPATH_SERVICE_DIRECTORY": "/srv/dir.yaml",
            "CAREPATH_ALLOW_EXAMPLE_DIRECTORY": "1",
        }
    )
    assert (settings.environment, settings.service_directory, settings.allow_example_directory) == (
        "production",
        Path("/srv/dir.yaml"),
        True,
    )
    assert Settings.from_env({}).environment == "development"
    with pytest.raises(ValueError, match="unknown environment 'staging'"):
        Settings(environment="staging")


def test_a_production_server_refuses_to_start_on_example_data(tmp_path: Path) -> None:
    config = {
        "TESTING": True,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'carepath.sqlite3'}",
        "PATHWAYS_DIR": TESTS / "pathways",
        "ENV": "production",
    }
    with pytest.raises(ExampleDirectoryError, match="refusing to start"):
        create_app(config)
    app = create_app({**config, "ALLOW_EXAMPLE_DIRECTORY": True})
    app.extensions["carepath"].close()
    broken = tmp_path / "broken.yaml"
    broken.write_text("example: maybe\n", encoding="utf-8")
    with pytest.raises(RuleFileError) as raised:
        create_app({**config, "ENV": "development", "SERVICE_DIRECTORY": broken})
    assert "broken.yaml:1:10: expected example as true or false" in str(raised.value)


def test_carepath_serve_says_why_it_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flask.Flask, "run", lambda app, **kwargs: None)  # not listening: the start is the test
    env = {
        "CAREPATH_DATABASE_URL": f"sqlite:///{tmp_path / 'carepath.sqlite3'}",
        "CAREPATH_PATHWAYS_DIR": str(TESTS / "pathways"),
        "CAREPATH_ENV": "production",
    }
    refused = CliRunner().invoke(main, ["serve"], env=env)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "Error: refusing to start: the service directory" in refused.output
    assert "CAREPATH_ALLOW_EXAMPLE_DIRECTORY=1" in refused.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("example: false\nengland: {}\n", encoding="utf-8")
    refused = CliRunner().invoke(main, ["serve"], env={**env, "CAREPATH_SERVICE_DIRECTORY": str(broken)})
    assert refused.exit_code == 1 and f"{broken}:2:10: the england section needs 'emergency_number'" in refused.output
