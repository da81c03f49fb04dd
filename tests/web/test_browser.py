"""The web app in a real browser: Debian's chromium driven by Selenium through Debian's chromedriver.

One server (the app in a thread on 127.0.0.1, a copy of the bundled pathways' template database with the
synthetic demo patients loaded) and one browser session for the whole module. The tests sign in as each
role, complete a task from the work list and see the diagram overlay move, open a document, find a
validation marker and select its element, check that a role without permission sees neither the page
nor the action, sign in at an OpenID Connect provider (a local fake, on a second server) and back, and
run axe-core on every page (no serious or critical violation). A failing test saves a screenshot
(tests/web/conftest.py). With CAREPATH_DOCS_SCREENSHOTS=1 the main pages are saved to docs/screenshots/
for docs/web.md.

.ci/run installs chromium and chromium-driver; without them (a machine that cannot install Debian's
packages) the module is skipped, saying so.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from oidc_provider import AUDIENCE, CLIENT_ID, FakeProvider, serve
from sqlalchemy import select
from werkzeug.serving import make_server

from api import create_app
from engine import Settings
from engine.access import ROLES, create_token
from engine.db.models import PathwayInstance
from engine.db.session import unit_of_work
from engine.demo import load_demo

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency (pip install -e .[dev])")
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

REPO = Path(__file__).resolve().parent.parent.parent
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
AXE = REPO / "tests" / "web" / "vendor" / "axe-core" / "4.14.1" / "axe.min.js"
DOCS = REPO / "docs" / "screenshots"
PATIENT, OTHER_PATIENT = "SYN-DEMO-0002", "SYN-DEMO-0003"  # engine.demo: care plan proposed; another patient

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="needs Debian's chromium and chromium-driver (.ci/run installs them with apt-get)",
    ),
]


@dataclass
class Server:
    url: str
    tokens: dict[str, str]
    engine: Any


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app on 127.0.0.1 (a free port) over a new SQLite database: the bundled pathways and the demo
    patients (``carepath demo`` deploys the one and loads the other)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'web.sqlite3'}"
    load_demo(Settings(database_url=url, pathways_dir=REPO / "pathways", rules_dir=REPO / "rules"))
    app = create_app(
        {
            "DATABASE_URL": url,
            "PATHWAYS_DIR": REPO / "pathways",
            "RULES_DIR": REPO / "rules",
            "SECRET_KEY": "browser-tests",
        }
    )
    engine = app.extensions["carepath"]
    tokens = {}
    with unit_of_work(engine.sessions) as session:
        for role in ROLES:  # the patient is a demo patient whose care plan has been proposed
            tokens[role] = create_token(
                session,
                role,
                f"{role} (browser test)",
                engine.clock,
                patient_ref=PATIENT if role == "patient" else None,
            )[1]
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{http.server_port}", tokens, engine)
    finally:
        http.shutdown()
        thread.join(timeout=10)
        engine.close()


class Browser:
    """The shared browser session, with the few steps the tests repeat."""

    def __init__(self, driver: Any, server: Server) -> None:
        self.driver, self.server = driver, server

    def open(self, path: str) -> None:
        self.driver.get(self.server.url + path)

    def find(self, css: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css: str) -> list[Any]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self) -> str:
        return str(self.find("body").text)

    def wait(self, condition: Callable[[Any], Any], seconds: float = 15) -> Any:
        # htmx swaps parts of the page: an element read while it is replaced is read again.
        return WebDriverWait(self.driver, seconds, ignored_exceptions=(StaleElementReferenceException,)).until(
            condition
        )

    def sign_in(self, role: str) -> None:
        self.driver.delete_all_cookies()
        self.open("/sign-in")
        self.find("#token").send_keys(self.server.tokens[role])
        self.find("#token").send_keys(Keys.ENTER)
        self.wait(lambda d: "/sign-in" not in d.current_url)

    def diagram(self) -> Any:
        """The diagram once bpmn-js drew it (or said it could not)."""
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, ".cp-diagram[data-state]"))

    def axe(self, what: str) -> None:
        """axe-core on the current page: no serious or critical violation."""
        self.driver.execute_script(AXE.read_text(encoding="utf-8"))
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
            "v => [v.id, v.impact, v.nodes.length, v.nodes.slice(0, 2).map(n => n.target.join(' '))])))"
            ".catch(e => done([['axe-error', 'critical', 0, [String(e)]]]));"
        )
        bad = [v for v in result if v[1] in ("serious", "critical")]
        assert bad == [], f"{what}: {bad}"

    def screenshot(self, name: str, show: str | None = None) -> None:
        """For docs/web.md, with CAREPATH_DOCS_SCREENSHOTS set: the page, scrolled to ``show``."""
        if os.environ.get("CAREPATH_DOCS_SCREENSHOTS"):
            DOCS.mkdir(parents=True, exist_ok=True)
            if show:
                self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", self.find(show))
            self.driver.save_screenshot(str(DOCS / f"{name}.png"))


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Browser]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
        "--lang=en-GB",
        "--disable-gpu",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for policy violations
    # The system chromedriver, named explicitly: Selenium Manager must not try to download one.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    driver.set_page_load_timeout(30)
    try:
        yield Browser(driver, server)
    finally:
        driver.quit()


def _policy_violations(browser: Browser) -> list[str]:
    """The console's Content-Security-Policy messages since the last call (reading the log empties it)."""
    return [e["message"] for e in browser.driver.get_log("browser") if "Content Security Policy" in e["message"]]


@pytest.fixture(autouse=True)
def no_policy_violations(browser: Browser) -> Iterator[None]:
    """Every test fails on a script, style, font or fetch the pages' Content-Security-Policy blocked:
    a blocked script is a page that silently stopped working."""
    _policy_violations(browser)
    yield
    assert _policy_violations(browser) == []


def test_the_policy_blocks_an_inline_script_and_the_check_sees_it(browser: Browser) -> None:
    browser.sign_in("clinician")
    browser.driver.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.cpInline = 1'; document.head.append(s);"
    )
    assert browser.driver.execute_script("return window.cpInline") is None
    assert any("script-src 'self'" in m for m in _policy_violations(browser))


def test_a_sign_in_link_asks_first_and_takes_the_token_out_of_the_address_bar(browser: Browser) -> None:
    browser.sign_in("clinician")
    browser.open(f"/sign-in?token={browser.server.tokens['author']}")  # someone else's link
    browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-test=signed-in-already]"))
    assert "token" not in browser.driver.current_url
    browser.axe("sign-in link page")
    browser.open("/")
    assert browser.driver.current_url.endswith("/work-list")  # still the clinician
    browser.driver.delete_all_cookies()
    browser.open(f"/sign-in?token={browser.server.tokens['author']}")
    browser.find("[data-test=sign-in-link] button").click()
    browser.wait(lambda d: d.current_url.endswith("/pathways"))


def test_each_role_signs_in_and_sees_its_own_start_page(browser: Browser) -> None:
    expected = {
        "clinician": ("/work-list", "Work list"),
        "author": ("/pathways", "Pathway library"),
        "auditor": ("/audit/trail", "Event trail verification"),
        "system": ("/work-list", "Work list"),
        "admin": ("/", "CarePath"),  # webhooks are managed through the API and the command line
        "patient": ("/my", "My care plan"),  # never the staff work list
        "manager": ("/service", "Service insight"),
    }
    for role in ROLES:
        browser.sign_in(role)
        path, heading = expected[role]
        assert browser.driver.current_url.endswith(path), (role, browser.driver.current_url)
        assert browser.find("h1").text == heading
        if role == "auditor":
            browser.axe("event trail")
            browser.screenshot("trail")
        browser.find("[data-test=sign-out]").click()
        browser.wait(lambda d: d.current_url.endswith("/sign-in"))
    browser.axe("sign-in page")


def test_a_person_signs_in_at_the_identity_provider(browser: Browser, tmp_path: Path) -> None:
    """The whole round trip in a real browser: CarePath -> the (local, fake) provider -> the callback."""
    with serve(FakeProvider(), datetime.now(UTC)) as fake:
        app = create_app(
            {
                "DATABASE_URL": f"sqlite:///{tmp_path / 'oidc.sqlite3'}",
                "PATHWAYS_DIR": REPO / "pathways",
                "RULES_DIR": REPO / "rules",
                "SECRET_KEY": "browser-tests",
                "OIDC_ISSUER": fake.issuer,
                "OIDC_AUDIENCE": AUDIENCE,
                "OIDC_CLIENT_ID": CLIENT_ID,
                "OIDC_STAFF_ID_CLAIM": "preferred_username",
            }
        )
        http = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=http.serve_forever, daemon=True)
        thread.start()
        try:
            there = Browser(browser.driver, Server(f"http://127.0.0.1:{http.server_port}", {}, None))
            there.driver.delete_all_cookies()
            there.open("/sign-in?next=/patients")
            there.axe("sign-in page with a provider")
            there.find("[data-test=provider-sign-in]").click()
            there.wait(lambda d: d.current_url.endswith("/patients"))
            assert "j.smith" in there.text() and fake.token_requests
        finally:
            http.shutdown()
            thread.join(timeout=10)
            app.extensions["carepath"].close()
            browser.driver.delete_all_cookies()


def test_the_first_key_press_reaches_the_skip_link(browser: Browser) -> None:
    browser.sign_in("clinician")
    browser.find("body").send_keys(Keys.TAB)
    focused = browser.driver.switch_to.active_element
    assert focused.get_attribute("class") == "nhsuk-skip-link"


def test_a_clinician_completes_a_task_from_the_work_list_and_the_diagram_moves_on(browser: Browser) -> None:
    browser.sign_in("clinician")
    browser.axe("work list")
    browser.screenshot("work-list")
    patient = browser.find("#filter-patient")
    patient.send_keys("SYN-DEMO-0004")
    patient.send_keys(Keys.ENTER)
    browser.wait(
        lambda d: (
            "SYN-DEMO-0001" not in (results := d.find_element(By.ID, "work-list-results").text)
            and "SYN-DEMO-0004" in results
        )
    )
    link = next(a for a in browser.finds("#work-list-results a") if "treatment" in a.text.lower())
    link.click()
    browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-test=complete]"))
    browser.axe("task page")
    browser.screenshot("task")
    browser.find("[data-test=complete]").click()  # nothing filled in: the errors, per field
    browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, ".nhsuk-error-summary"))
    links = browser.finds(".nhsuk-error-summary__list a")
    assert len(links) == 2, [a.text for a in links]  # the form's two required fields, each named
    for link in links:  # each error leads to its field, which says it too
        target = link.get_attribute("href").split("#", 1)[1]
        assert browser.finds(f"#{target}") and browser.finds(f"#{target}-error")
    browser.axe("task page with errors")
    browser.screenshot("task-errors")
    browser.finds(".nhsuk-checkboxes__label")[0].click()
    date = next(i for i in browser.finds("input[type=date]"))
    browser.driver.execute_script("arguments[0].value = '2026-01-15'", date)
    browser.find("[data-test=complete]").click()
    browser.wait(lambda d: "/tasks/" not in d.current_url)
    assert "completed for SYN-DEMO-0004" in browser.text()
    diagram = browser.diagram()
    assert diagram.get_attribute("data-state") == "shown"
    marked = diagram.get_attribute("data-marked").split()
    assert "treatment:done" in marked, marked
    assert not any(m.endswith(":ready") and m.startswith("treatment") for m in marked)
    assert browser.finds("#diagram .djs-overlay .cp-badge-done")
    browser.axe("patient page")
    browser.screenshot("patient", "#diagram-heading")


def test_a_clinician_records_a_warning_sign_phoned_in_from_the_patient_page(browser: Browser, server: Server) -> None:
    """The patient page lists what the pathway waits for; the form names each missing answer, and the record
    starts triage as a report from the patient does."""
    instance = _instance_of(server, "SYN-DEMO-0005")  # breast, after the end of treatment summary
    browser.sign_in("clinician")
    browser.open(f"/patients/{instance}")
    browser.find("[data-test=record-events] [data-message=warning_sign_reported] a").click()
    browser.wait(lambda d: d.current_url.endswith("/record/warning_sign_reported"))
    browser.axe("record a warning sign")
    browser.find("[data-test=record]").click()  # nothing chosen: the error, on its field
    browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, ".nhsuk-error-summary"))
    [link] = browser.finds(".nhsuk-error-summary__list a")
    assert link.text == "Choose what the patient noticed" and browser.finds("#f-warning_sign-error")
    browser.axe("record a warning sign, with its error")
    browser.screenshot("record-event")
    browser.find("label[for=f-warning_sign-1]").click()
    browser.find("#f-description").send_keys("Hot and shivery since this morning")
    browser.find("[data-test=record]").click()
    browser.wait(lambda d: d.current_url.endswith(f"/patients/{instance}"))
    assert "Recorded for SYN-DEMO-0005: Warning sign reported." in browser.text()
    assert "triage" in [t["element"] for t in server.engine.instances.get(instance).ready_tasks]
    # Ending the pathway is a page of its own, which points to recording a death instead.
    browser.find("[data-test=manage-actions] [data-action=cancel] a").click()
    browser.wait(lambda d: d.current_url.endswith(f"/patients/{instance}/cancel"))
    assert browser.finds("[data-test=death-hint] a")
    browser.axe("end this pathway")
    browser.open(f"/patients/{instance}/data")
    assert browser.find("#f-diagnosis_date").get_attribute("value")  # the instance's own values, to correct
    browser.axe("correct the start data")


def test_a_clinician_starts_a_pathway_for_a_newly_diagnosed_patient(browser: Browser, server: Server) -> None:
    browser.sign_in("clinician")
    browser.open("/patients")
    browser.find("[data-test=start-pathway]").click()
    browser.wait(lambda d: d.current_url.endswith("/patients/start"))
    browser.axe("start: choose a pathway")
    next(a for a in browser.finds("[data-test=startable] a") if "general_cancer" in a.get_attribute("href")).click()
    browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-test=start]"))
    browser.axe("start: the form")
    browser.screenshot("start")
    browser.find("[data-test=start]").click()  # nothing filled in: each required field says so
    browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, ".nhsuk-error-summary"))
    assert len(browser.finds(".nhsuk-error-summary__list a")) == 5  # the reference and four start fields
    browser.axe("start: the form with its errors")
    browser.find("#f-patient_ref").send_keys("SYN-BROWSER-0001")
    browser.find("#f-diagnosis").send_keys("myeloma")
    browser.driver.execute_script("arguments[0].value = '2026-01-05'", browser.find("#f-diagnosis_date"))
    browser.find("#f-age").send_keys("63")
    browser.find("label[for=f-treatment_intent-1]").click()
    browser.find("[data-test=start]").click()
    browser.wait(lambda d: "/patients/start" not in d.current_url)
    assert "Pathway started for SYN-BROWSER-0001" in browser.text()
    instance = _instance_of(server, "SYN-BROWSER-0001")
    assert browser.driver.current_url.endswith(f"/patients/{instance}")


def test_a_clinician_checks_the_pathway_of_a_patient_whose_diagnosis_names_another_site(
    browser: Browser, server: Server
) -> None:
    """The demo's EHR started the breast pathway for a lung cancer diagnosis: the work list tags the patient's
    tasks; the patient page says so with the ways out, and the clinician confirms the pathway."""
    instance = _instance_of(server, "SYN-DEMO-0010")
    browser.sign_in("clinician")
    browser.open("/work-list?patient=SYN-DEMO-0010")
    assert browser.finds("[data-test=check-pathway]")
    browser.axe("work list with a pathway to check")
    browser.open(f"/patients/{instance}")
    callout = browser.find("[data-test=pathway-check]")
    assert "names lung cancer" in callout.text and "pathway for breast cancer" in callout.text
    browser.axe("patient page with a pathway to check")
    browser.screenshot("pathway-check", show="[data-test=status]")
    browser.find("[data-test=confirm-pathway]").click()
    browser.wait(lambda d: "Pathway confirmed for SYN-DEMO-0010." in d.find_element(By.TAG_NAME, "body").text)
    assert not browser.finds("[data-test=pathway-check]")
    assert server.engine.instances.get(instance).pathway_check is None


def test_a_document_opens_in_swedish(browser: Browser) -> None:
    browser.sign_in("clinician")
    browser.open("/patients?patient=SYN-DEMO-0002")
    browser.finds("[data-test=patients] a")[0].click()
    browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-test=documents]"))
    browser.find("[data-test=documents] a[hreflang=sv]").click()
    browser.wait(lambda d: "/documents/care-plan" in d.current_url)
    assert browser.find("html").get_attribute("lang") == "sv"
    assert "SYN-DEMO-0002" in browser.text()


def test_an_author_finds_a_validation_marker_and_selects_its_element(browser: Browser, tmp_path: Path) -> None:
    # A diagram drawn in bpmn.io (with its layout), broken: the gateway lost its default flow.
    drawn = (REPO / "tests" / "diagrams" / "ok" / "bpmnio.bpmn").read_text(encoding="utf-8")
    broken = tmp_path / "late_effects.bpmn"
    broken.write_text(drawn.replace(' default="Flow_0nolate"', ""), encoding="utf-8")
    browser.sign_in("author")
    browser.open("/pathways/check")
    browser.find("#diagram-file").send_keys(str(broken))
    browser.find("form button[type=submit]").click()
    diagram = browser.diagram()
    marked = diagram.get_attribute("data-marked").split()
    assert {"Gateway_0late:problem", "Flow_0nolate:problem"} <= set(marked), marked
    problem = "Gateway_0late"
    assert browser.finds(f"g.djs-element.cp-problem[data-element-id='{problem}']")
    button = browser.find(f"[data-select-element='{problem}']")
    button.send_keys(Keys.ENTER)  # by keyboard
    browser.wait(lambda d: d.find_element(By.ID, "diagram").get_attribute("data-selected") == problem)
    assert browser.finds(f"g.djs-element.cp-selected[data-element-id='{problem}']")
    browser.axe("diagram check")
    browser.screenshot("diagram-check", "#diagram")
    browser.open("/pathways")
    browser.find("[data-test=library] tbody a").click()
    browser.find("[data-test=versions] tbody a").click()
    assert browser.diagram().get_attribute("data-state") == "shown"
    browser.axe("version diagram")
    # The diagram in words: a step's name, chosen by keyboard, finds it on the drawing.
    row = browser.finds("[data-test=outline] tbody tr")[2]
    step = row.get_attribute("data-element")
    row.find_element(By.CSS_SELECTOR, "button").send_keys(Keys.ENTER)
    browser.wait(lambda d: d.find_element(By.ID, "diagram").get_attribute("data-selected") == step)
    assert browser.finds(f"g.djs-element.cp-selected[data-element-id='{step}']")


def test_an_author_sees_what_changed_between_two_versions(browser: Browser, server: Server) -> None:
    """A new version of the general pathway renames a task; the diff marks it on both diagrams."""
    general = (REPO / "pathways" / "general.bpmn").read_bytes()
    old = server.engine.catalog.versions("general_cancer")[0].version
    renamed = general.replace(b'name="Assign the named contact"', b'name="Name the key worker"', 1)
    new = server.engine.catalog.deploy_upload({"general.bpmn": renamed}, actor="author:browser-test")[0].version
    assert new != old
    browser.sign_in("author")
    browser.open("/pathways/general_cancer")
    browser.find(f"a[href*='diff?from={old[:12]}']").click()
    changes = browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, "#changes[data-state=shown]"))
    assert "Name the key worker (assign_contact)" in changes.text
    for side in ("newer", "older"):
        marked = browser.find(f"#diagram-{side}").get_attribute("data-marked").split()
        assert marked == ["assign_contact:changed"], (side, marked)
    browser.axe("version diff")
    browser.screenshot("diff", "#changes-heading")


def test_an_author_edits_a_diagram_in_the_browser_and_saves_a_new_version(browser: Browser, server: Server) -> None:
    before = server.engine.catalog.versions("lung_cancer")[0].version
    browser.sign_in("author")
    browser.open(f"/pathways/lung_cancer/versions/{before[:12]}")
    browser.find("[data-test=edit]").click()
    browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, ".cp-diagram[data-state=shown]"))
    browser.axe("diagram editor")
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", browser.find("#diagram"))
    # A task of the diagram that the palette does not cover, double-clicked: bpmn-js edits its label in place.
    reachable = (
        "const hit = arguments[0]; const r = hit.getBoundingClientRect();"
        "const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);"
        "return r.y > 0 && r.bottom < window.innerHeight && hit.parentNode.contains(top);"
    )
    hit = next(
        h
        for h in browser.finds("g.djs-shape[data-element-id] > .djs-hit")
        if "Task" in (h.find_element(By.XPATH, "..").get_attribute("data-element-id") or "")
        or h.find_element(By.XPATH, "..").get_attribute("data-element-id") in ("mdt", "assign_contact", "treatment")
        if browser.driver.execute_script(reachable, h)
    )
    ActionChains(browser.driver).double_click(hit).perform()
    label = browser.wait(
        lambda d: next(
            iter(e for e in d.find_elements(By.CSS_SELECTOR, ".djs-direct-editing-content") if e.is_displayed()), None
        )
    )
    label.send_keys(Keys.CONTROL, "a")
    label.send_keys("Renamed in the browser")
    browser.find("h1").click()  # leaving the label ends the edit
    browser.screenshot("edit", "#diagram")
    browser.find("[data-test=save]").click()
    browser.wait(lambda d: "/edit" not in d.current_url)
    after = server.engine.catalog.versions("lung_cancer")[0]
    assert after.version != before and after.latest and after.version[:12] in browser.driver.current_url
    assert b'name="Renamed in the browser"' in server.engine.catalog.diagram("lung_cancer", after.version)
    assert after.deployed_by.startswith("author:")


def test_an_author_asks_for_a_migration_and_a_second_author_approves_it(browser: Browser, server: Server) -> None:
    """Four eyes on the migration page: Alice asks (the dry run is kept), may not approve her own request, and
    Bob's approval moves the prostate pathway's demo patient to the version he activated."""
    engine = server.engine
    held = {}
    with unit_of_work(engine.sessions) as session:
        for staff in ("alice", "bob"):
            token_id, held[staff] = create_token(
                session, "author", f"{staff} (browser test)", engine.clock, staff_id=staff
            )
    prostate = (REPO / "pathways" / "prostate.bpmn").read_bytes()
    renamed = prostate.replace(
        b'name="Prostate cancer: personalised care from diagnosis"',
        b'name="Prostate cancer: personalised care from diagnosis (v2)"',
        1,
    )
    assert renamed != prostate
    [new] = engine.catalog.deploy_upload({"prostate.bpmn": renamed}, actor="author:tok_x for staff:alice")
    engine.catalog.activate("prostate_cancer", new.version, "author:tok_y for staff:bob")
    with unit_of_work(engine.sessions) as session:
        [instance_id] = session.scalars(
            select(PathwayInstance.id).where(
                PathwayInstance.pathway_id == "prostate_cancer", PathwayInstance.patient_ref == "SYN-DEMO-0004"
            )
        )

    def sign_in_as(staff: str) -> None:
        browser.driver.delete_all_cookies()
        browser.open("/sign-in")
        browser.find("#token").send_keys(held[staff])
        browser.find("#token").send_keys(Keys.ENTER)
        browser.wait(lambda d: "/sign-in" not in d.current_url)

    sign_in_as("alice")
    browser.open("/pathways/prostate_cancer")
    browser.find("a[href='/pathways/prostate_cancer/migration']").click()
    browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, "[data-test=migration-summary]"))
    assert "1 would move, 0 refused" in browser.find("[data-test=migration-summary]").text
    browser.find("[data-test=ask-migration]").click()
    row = browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, "[data-test=migration-request]"))
    assert row.get_attribute("data-status") == "requested" and "Waiting for a second author" in row.text
    assert "SYN-DEMO-0004" not in browser.text()  # authors read instances by id only
    browser.axe("migration page")
    browser.find("[data-test=approve-migration]").click()  # her own request
    refusal = browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, "[data-test=migration-refused]"))
    assert "second author" in refusal.text
    assert engine.instances.get(instance_id).pathway_version != new.version

    sign_in_as("bob")
    browser.open("/pathways/prostate_cancer/migration")
    browser.find("[data-test=approve-migration]").click()
    browser.wait(lambda d: d.find_element(By.CSS_SELECTOR, "[data-test=migration-request][data-status=executed]"))
    assert "1 moved, 0 refused" in browser.find("[data-test=migration-result]").text
    assert not browser.finds("[data-test=approve-migration]")
    assert engine.instances.get(instance_id).pathway_version == new.version
    browser.screenshot("migration", "#requests-heading")


def test_a_role_without_permission_sees_neither_the_page_nor_the_action(browser: Browser, server: Server) -> None:
    browser.sign_in("clinician")
    browser.open("/work-list")
    task_url = browser.finds("#work-list-results a")[0].get_attribute("href")
    browser.sign_in("auditor")
    assert not browser.finds("a[href='/work-list']")
    browser.driver.get(task_url)
    assert "You cannot see this page" in browser.text()
    assert not browser.finds("[data-test=complete]")
    browser.axe("forbidden page")
    browser.open("/patients?patient=SYN-DEMO-0001")
    browser.finds("[data-test=patients] a")[0].click()
    browser.diagram()
    assert not browser.finds("[data-test=ready-tasks] a")  # tasks are listed, not offered
    assert not browser.finds("#care-plan button")
    browser.sign_in("author")
    browser.open("/audit/trail")
    assert "You cannot see this page" in browser.text()


def test_a_manager_reads_each_chart_and_its_table_by_keyboard(browser: Browser) -> None:
    """The service page over the demo patients: three charts drawn, each named for assistive technology,
    each beside its table; the period form works from the keyboard; axe finds nothing serious."""
    browser.sign_in("manager")
    assert browser.driver.current_url.endswith("/service")
    charts = browser.finds("svg.cp-chart")
    assert len(charts) == 3
    for chart in charts:
        assert chart.get_attribute("role") == "img" and chart.size["width"] > 300
        assert chart.find_element(By.CSS_SELECTOR, "title").get_attribute("textContent")
    for name in ("measures", "referrals", "backlog"):
        assert browser.find(f"[data-test={name}-table]").is_displayed()
    browser.axe("service insight")
    browser.screenshot("service", show="[data-test=referrals-chart]")
    # Every table fits or scrolls in its own region: the page itself never scrolls sideways.
    assert browser.driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    field = browser.find("#period-pathway")
    field.send_keys("Breast")  # a select answers to the first letters of a title
    field.send_keys(Keys.TAB)  # to Apply, by keyboard
    browser.driver.switch_to.active_element.send_keys(Keys.ENTER)
    browser.wait(lambda d: "pathway=breast_cancer" in d.current_url)
    assert "Breast cancer pathway" in browser.find("[data-test=covers]").text
    browser.open("/service?pathway=not%20a%20pathway!")
    browser.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-test=problems]"))
    browser.axe("service insight with a problem")


def test_auditors_read_an_evaluation_in_swedish(browser: Browser) -> None:
    """An auditor reads a patient's concerns over time (the chart and its table) and an evaluation, in Swedish."""
    browser.sign_in("auditor")
    browser.find("header button[lang=sv]").click()
    browser.wait(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "sv")
    browser.open("/patients?patient=SYN-DEMO-0002")
    browser.finds("[data-test=patients] a")[0].click()
    # The concerns over the assessments: a chart named in Swedish, a line per row of the table beside it.
    chart = browser.find("[data-test=concerns-chart] svg.cp-chart")
    assert chart.is_displayed() and chart.get_attribute("role") == "img" and chart.size["width"] > 300
    assert (
        chart.find_element(By.CSS_SELECTOR, "title").get_attribute("textContent")
        == "En linje per bekymmer över behovsbedömningarna"
    )
    rows = browser.finds("[data-test=concern-trends] tbody tr")
    lines = chart.find_elements(By.CSS_SELECTOR, "g.cp-chart-series")
    assert len(lines) == len(rows) > 0
    assessments = len(browser.finds("[data-test=concern-trends] thead th")) - 1
    assert all(len(line.find_elements(By.CSS_SELECTOR, "circle")) == assessments for line in lines)
    browser.axe("patient page with the concerns chart (sv)")
    browser.find("a[href*='/evaluations']").click()
    browser.find("[data-test=evaluations] a").click()
    assert "Regelutvärdering" in browser.text()
    codes = browser.finds("a[href*='?why=']")
    assert codes
    codes[0].click()
    assert browser.find("[data-test=explanation]").text
    browser.axe("evaluation (sv)")
    browser.screenshot("evaluation")
    browser.find("header button[lang=en]").click()


def _instance_of(server: Server, patient_ref: str) -> str:
    with server.engine.sessions() as session:
        return str(session.scalars(select(PathwayInstance.id).where(PathwayInstance.patient_ref == patient_ref)).one())


def _no_sideways_scroll(browser: Browser, what: str) -> None:
    overflow = browser.driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, (what, overflow)


def test_a_patient_reads_their_plan_and_reports_a_warning_sign_on_a_phone(browser: Browser, server: Server) -> None:
    """Issue 16.6 at 375x667: the plan in plain words, the 24-hour line before the warning-sign form, the
    report reaching the care team, and another patient's pages out of reach."""
    own = _instance_of(server, PATIENT)
    browser.driver.set_window_size(375, 667)
    try:
        browser.sign_in("patient")
        assert browser.driver.current_url.endswith("/my") and browser.find("h1").text == "My care plan"
        line = browser.find("[data-test=twenty-four-hour-line]")
        assert line.location["y"] < browser.find("#next").location["y"] < browser.find("#plan").location["y"]
        plan = browser.find("[data-test=my-plan]").text
        assert "Why: You scored worry, fear or anxiety 8 out of 10" in plan, plan
        assert browser.find("[data-test=what-happens-next]").text and browser.find("[data-test=my-contacts]").text
        _no_sideways_scroll(browser, "plan")
        browser.axe("the patient's plan on a phone")
        browser.screenshot("my-plan-phone")
        browser.find("[data-test=report-warning-sign]").click()
        browser.wait(lambda d: d.current_url.endswith("/warning-sign"))
        assert (
            browser.find("[data-test=twenty-four-hour-line]").location["y"]
            < browser.find("#warning-form").location["y"]
        )
        _no_sideways_scroll(browser, "warning sign")
        browser.axe("the warning-sign form on a phone")
        browser.screenshot("my-warning-sign-phone")
        browser.find("label[for=sign-1]").click()
        browser.find("#f-description").send_keys("Hot and shivery since this morning")
        browser.find("[data-test=send-warning-sign]").click()
        browser.wait(lambda d: d.find_elements("css selector", "[data-test=reported-sign-advice]"))
        # The first sign is an emergency: the answer is to act now, not that the team has been told.
        advice = browser.find("[data-test=reported-sign-advice]")
        assert advice.get_attribute("data-level") == "emergency", advice.text
        assert "Do not wait for them to contact you" in advice.text
        assert browser.find("h1").text == "Act now: do not wait for your care team"
        _no_sideways_scroll(browser, "what to do now")
        browser.axe("what to do after reporting a warning sign, on a phone")
        browser.screenshot("my-warning-sign-sent-phone")
        assert "triage" in [t["element"] for t in server.engine.instances.get(own).ready_tasks]
        browser.find("[data-test=back-to-plan]").click()
        browser.wait(lambda d: d.current_url.endswith(f"/my/plans/{own}"))
        other = _instance_of(server, OTHER_PATIENT)
        forbidden = "You cannot see this page"
        for path, words in (
            (f"/my/plans/{other}", "Page not found"),
            (f"/patients/{other}", forbidden),
            ("/work-list", forbidden),
        ):
            browser.open(path)
            assert browser.find("h1").text == words, path
            assert OTHER_PATIENT not in browser.text()
    finally:
        browser.driver.set_window_size(1280, 800)
    browser.open("/my")
    _no_sideways_scroll(browser, "plan at 1280x800")
    browser.axe("the patient's plan on a desktop")
    browser.screenshot("my-plan", "#next")
    browser.find("[data-test=my-documents] a[lang=sv]").click()
    assert browser.find("html").get_attribute("lang") == "sv"
    browser.driver.back()
    browser.find("a[data-test=ask-for-assessment]").click()
    browser.wait(lambda d: d.current_url.endswith(f"/my/plans/{own}/assessment"))
    assert browser.find("button[data-test=ask-for-assessment]")
    browser.axe("asking for a needs assessment")


def test_pages_fit_a_tablet(browser: Browser) -> None:
    browser.sign_in("clinician")
    browser.driver.set_window_size(768, 1024)
    try:
        for path in ("/work-list", "/patients?patient=SYN-DEMO-0001"):
            browser.open(path)
            if "patients?" in path:
                browser.finds("[data-test=patients] a")[0].click()
                browser.diagram()
            overflow = browser.driver.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, (path, overflow)
        browser.axe("patient page at tablet width")
    finally:
        browser.driver.set_window_size(1280, 800)
    with pytest.raises(TimeoutException):  # the wait helper gives up rather than hanging
        browser.wait(lambda d: False, seconds=0.2)
    time.sleep(0)
