"""The vendored front-end libraries: every file matches its SHA-256 sum, the pages load exactly the
versions vendored, and nothing is fetched from another site at run time."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from api.web.assets import VENDORED

REPO = Path(__file__).resolve().parent.parent.parent
WEB = REPO / "api" / "web"
FOLDERS = [WEB / "static" / "vendor", REPO / "tests" / "web" / "vendor"]
NOT_VENDORED = {"SHA256SUMS", "refresh.sh", "nhsuk-frontend.LICENSE"}  # the sums, the script, its input


def _sums(folder: Path) -> dict[str, str]:
    lines = (folder / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    return {name.removeprefix("./"): digest for digest, name in (line.split(None, 1) for line in lines if line)}


def test_every_vendored_file_has_its_checksum_and_matches_it() -> None:
    for folder in FOLDERS:
        sums = _sums(folder)
        files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - NOT_VENDORED
        assert files == set(sums), folder
        for name, digest in sums.items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_each_library_ships_its_licence_and_the_pages_load_the_vendored_versions() -> None:
    vendor = WEB / "static" / "vendor"
    assert {p.name for p in vendor.iterdir() if p.is_dir()} == set(VENDORED)
    for library, version in VENDORED.items():
        assert [p.name for p in (vendor / library).iterdir()] == [version], library
        assert (vendor / library / version / "LICENSE").read_text(encoding="utf-8").strip()
    script = (WEB / "static" / "carepath.js").read_text(encoding="utf-8")
    assert f"./vendor/nhsuk-frontend/{VENDORED['nhsuk-frontend']}/" in script
    refresh = (vendor / "refresh.sh").read_text(encoding="utf-8")
    for name, library in (("HTMX", "htmx.org"), ("BPMN_JS", "bpmn-js"), ("NHSUK", "nhsuk-frontend")):
        assert f"{name}={VENDORED[library]}" in refresh


def test_nothing_is_loaded_from_another_site() -> None:
    served = (
        list((WEB / "templates").rglob("*.html"))
        + list((WEB / "static").glob("*.*"))
        + list((WEB / "static" / "vendor").rglob("*.css"))
    )
    for path in served:
        text = path.read_text(encoding="utf-8")
        loads = re.findall(r"""(?:src|href)\s*=\s*["'](https?:)?//|url\(\s*["']?(?:https?:)?//|@import""", text)
        assert loads == [], path
    css = WEB / "static" / "vendor" / "nhsuk-frontend" / VENDORED["nhsuk-frontend"] / "nhsuk-frontend.min.css"
    assert "assets.nhs.uk" not in css.read_text(encoding="utf-8")
