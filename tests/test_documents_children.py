"""A child's documents (the children and young people's pathway): their 24-hour number is their
principal treatment centre's or shared care unit's, never the adult acute oncology line.

Children and young people on treatment and their parents call the treatment centre
(rules/catalogues/warning_signs.yaml, ``treatment-centre-line``). A synthetic child (SYN-CYP-...) is
driven through the bundled pathway with the journeys of tests/pathways_bundled, with the bundled
example directory; the named contact is the children's team's key worker (EXAMPLE-CYP-TEAM, whose
hospital is the principal treatment centre EXAMPLE-PTC).
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from pathways_bundled.journey import PATHWAYS, REPO, Journey
from pathways_bundled.journeys import SITES, _start
from pathways_bundled.journeys import _mdt as mdt
from pathways_bundled.journeys import _support as support
from pathways_bundled.journeys import _treatment as treatment

from engine import CarePath, ManualClock, Settings
from engine.documents.build import care_plan_document, end_of_treatment_summary, render_html
from engine.settings import bundled_service_directory

if TYPE_CHECKING:
    from conftest import DatabaseTemplates  # tests/conftest.py: imported by pytest, not by us

START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
ADULT_LINE = "01632 960100"  # the bundled directory's adult acute oncology line (england)
PTC_LINE = "01632 960310"  # EXAMPLE-PTC, the principal treatment centre, answered at all hours
CHILD_SIGNS = {"cyp_fever_on_treatment", "cyp_infection_contact", "cyp_bleeding_pale_tired"}


@dataclass
class Child:
    app: CarePath
    folder: Path
    journey: Journey


def _directory(folder: Path, name: str, change: Any = None) -> Path:
    """The bundled example directory with the journeys' staff reference as the children's key worker."""
    data = yaml.safe_load(bundled_service_directory().read_text(encoding="utf-8"))
    for system in ("england", "sweden"):
        data[system]["staff"]["STAFF-SYN-1"] = copy.deepcopy(data[system]["staff"]["STAFF-DEMO-2"])
    if change is not None:
        change(data)
    path = folder / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _app(child: Child, directory: Path) -> CarePath:
    settings = Settings(
        database_url=f"sqlite:///{child.folder / 'children.sqlite3'}",
        pathways_dir=PATHWAYS,
        rules_dir=REPO / "rules",
        service_directory=directory,
        four_eyes=False,
    )
    return CarePath(settings, ManualClock(child.journey.clock.now()))


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory, database_templates: DatabaseTemplates) -> Iterator[Child]:
    folder = tmp_path_factory.mktemp("children")
    shutil.copyfile(database_templates.sqlite_file(PATHWAYS), folder / "children.sqlite3")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'children.sqlite3'}",
        pathways_dir=PATHWAYS,
        rules_dir=REPO / "rules",
        service_directory=_directory(folder, "service_directory.yaml"),
        four_eyes=False,
    )
    clock = ManualClock(START)
    app = CarePath(settings, clock)
    try:
        site = SITES["children_young_people"]
        journey = _start(app, clock, site, "SYN-CYP-0001")
        support(journey, "later")
        journey.hna_declined()
        mdt(journey, site, prehab=False, special=False)
        treatment(journey, site, special=False)  # chemotherapy: the signs for children on treatment apply
        journey.hna_declined()
        journey.do(
            "write_summary",
            {
                "summary_treatments": ["chemotherapy"],
                "effects_to_watch_for": ["fatigue"],
                "warning_signs_given": True,
                "ongoing_support": [],
                "gp_actions": [],
                "follow_up_model": "scheduled",
            },
        )
        yield Child(app, folder, journey)
    finally:
        app.close()


def _signs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["code"]: s["contact"] for s in doc["warning_signs"]["signs"]}


def test_a_childs_warning_signs_give_the_treatment_centres_line(child: Child) -> None:
    doc = end_of_treatment_summary(child.app, child.journey.view.id, "en")
    signs = _signs(doc)
    assert set(signs) >= CHILD_SIGNS, sorted(signs)
    for code in CHILD_SIGNS:
        assert signs[code]["phone"] == PTC_LINE, (code, signs[code])
        assert "principal treatment centre" in signs[code]["name"], signs[code]
    # No sign of a child's document, nor its contacts, gives the adult acute oncology line.
    assert ADULT_LINE not in {c["phone"] for c in signs.values()}
    assert doc["who_to_call"]["twenty_four_hour_line"]["phone"] == PTC_LINE
    assert ADULT_LINE not in render_html(doc)


def test_a_childs_safety_box_gives_the_treatment_centres_line(child: Child) -> None:
    for document in (care_plan_document, end_of_treatment_summary):
        doc = document(child.app, child.journey.view.id, "en")
        assert doc["safety"]["phone"] == PTC_LINE, doc["safety"]
        assert PTC_LINE in doc["safety"]["text"] and ADULT_LINE not in doc["safety"]["text"]


def test_without_a_childrens_24_hour_line_a_child_is_given_the_emergency_number(child: Child) -> None:
    def no_childrens_line(data: dict[str, Any]) -> None:  # the children's centre open office hours only
        for system in ("england", "sweden"):
            for hospital in data[system]["hospitals"].values():
                if hospital["kind"] == "childrens_cancer_centre":
                    hospital["hours"] = {"days": "weekdays", "from": "09:00", "to": "17:00"}

    app = _app(child, _directory(child.folder, "no_childrens_line.yaml", no_childrens_line))
    try:
        doc = end_of_treatment_summary(app, child.journey.view.id, "en")
        for code in CHILD_SIGNS:
            contact = _signs(doc)[code]
            assert contact["phone"] == "999", contact
            assert "no 24-hour line for the child's treatment centre" in contact["name"]
        assert doc["safety"]["phone"] == "999" and "call 999 now" in doc["safety"]["text"]
        assert ADULT_LINE not in str(doc["safety"]) and ADULT_LINE not in {c["phone"] for c in _signs(doc).values()}
    finally:
        app.close()
