"""A subject access request (engine.subject_access, ``carepath patients export``): everything CarePath holds about
one patient on the bundled pathways, nobody else's, and the export itself in the access log."""

from __future__ import annotations

import json
import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from pathways_bundled.journey import PATHWAYS, REPO
from pathways_bundled.journeys import HIGH_CONCERNS, SITES, _start, _support
from sqlalchemy import select

from api.cli import main
from engine import CarePath, ManualClock, Settings
from engine.access_log import Access, record_reads
from engine.db.models import AccessRecord
from engine.db.session import unit_of_work
from engine.patients import link_identity

ASKER, OTHER = "SYN-SAR-0001", "SYN-SAR-0002"


def _world(tmp_path: Path, database_templates: Any) -> tuple[CarePath, dict[str, str], str]:
    shutil.copyfile(database_templates.sqlite_file(PATHWAYS), tmp_path / "sar.sqlite3")
    url = f"sqlite:///{tmp_path / 'sar.sqlite3'}"
    clock = ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))
    carepath = CarePath(
        Settings(database_url=url, pathways_dir=PATHWAYS, rules_dir=REPO / "rules", four_eyes=False), clock
    )
    asker = _start(carepath, clock, SITES["breast"], ASKER)
    _support(asker, "later")
    asker.hna(HIGH_CONCERNS)  # a rule evaluation, and care plan items
    other = _start(carepath, clock, SITES["lung"], OTHER)
    with unit_of_work(carepath.sessions) as session:
        link_identity(session, "https://idp.example", "subject-1", ASKER, "admin:test", clock)
    record_reads(
        carepath.sessions,
        Access(
            at=clock.now(),
            actor="clinician:tok_abc",
            action="instances.read",
            route="GET /x",
            status=200,
            request_id="r",
        ),
        [asker.view.id],
    )
    return carepath, {ASKER: asker.view.id, OTHER: other.view.id}, url


def test_the_export_holds_the_patients_records_and_nobody_elses(tmp_path: Path, database_templates: Any) -> None:
    carepath, ids, url = _world(tmp_path, database_templates)
    try:
        result = CliRunner().invoke(
            main,
            ["patients", "export", ASKER, "--as", "dpo-1", "--output", str(tmp_path / "sar.json")],
            env={
                "CAREPATH_DATABASE_URL": url,
                "CAREPATH_PATHWAYS_DIR": str(PATHWAYS),
                "CAREPATH_RULES_DIR": str(REPO / "rules"),
            },
        )
        assert result.exit_code == 0, result.output
        assert "exported: 1 pathway instance(s)" in result.stderr and ASKER not in result.stderr
        assert stat.S_IMODE(os.stat(tmp_path / "sar.json").st_mode) == 0o600
        text = (tmp_path / "sar.json").read_text(encoding="utf-8")
        document = json.loads(text)
        assert OTHER not in text and ids[OTHER] not in text
        [instance] = document["instances"]
        assert (instance["id"], instance["pathway_id"]) == (ids[ASKER], "breast_cancer")
        assert instance["data"]["diagnosis_date"] == "2026-01-12"
        [evaluation] = instance["rule_evaluations"]
        assert evaluation["facts"] and evaluation["outcomes"]
        assert instance["care_plan"]["items"] and instance["events"][0]["type"] == "started"
        assert [i["subject"] for i in document["identities"]] == ["subject-1"]
        assert document["death_record"] is None and document["accesses_complete"] is True
        assert [(a["actor"], a["route"]) for a in document["accesses"]] == [("clinician:tok_abc", "GET /x")]
        # The export is a look at the records, in the access log.
        with carepath.sessions() as session:
            rows = list(session.scalars(select(AccessRecord).where(AccessRecord.action == "subject_access.export")))
        assert [(r.actor, r.instance_id, r.patient_ref) for r in rows] == [("cli:staff:dpo-1", ids[ASKER], ASKER)]
    finally:
        carepath.close()


def test_a_death_is_in_the_export_and_an_unknown_patient_holds_nothing(tmp_path: Path, database_templates: Any) -> None:
    carepath, ids, url = _world(tmp_path, database_templates)
    env = {
        "CAREPATH_DATABASE_URL": url,
        "CAREPATH_PATHWAYS_DIR": str(PATHWAYS),
        "CAREPATH_RULES_DIR": str(REPO / "rules"),
    }
    try:
        carepath.instances.send_message("patient_died", "system:ehr", patient_ref=OTHER)
        died = CliRunner().invoke(main, ["patients", "export", OTHER, "--as", "dpo-1"], env=env)
        assert died.exit_code == 0 and ", a death record" in died.stderr
        document = json.loads(died.stdout)
        assert document["death_record"]["patient_ref"] == OTHER
        assert [i["status"] for i in document["instances"]] == ["completed"]
        unknown = CliRunner().invoke(main, ["patients", "export", "SYN-SAR-9999", "--as", "dpo-1"], env=env)
        assert unknown.exit_code == 0 and json.loads(unknown.stdout)["instances"] == []
        refused = CliRunner().invoke(main, ["patients", "export", "Anna Andersson", "--as", "dpo-1"], env=env)
        assert refused.exit_code == 2 and "Anna" not in refused.output  # the value is never echoed
        assert CliRunner().invoke(main, ["patients", "export", ASKER], env=env).exit_code == 2  # --as is required
    finally:
        carepath.close()
