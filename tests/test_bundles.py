"""Pathway bundles (issue 12, point 5): a folder or a zip archive holding a diagram, the shared
sub-pathways it calls, its forms and decision tables, read within bounds; hostile archives (zip
bombs, '..', absolute names, symlinks, too many entries) are refused by name, never extracted."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import main
from engine.errors import InvalidInputError
from engine.pathways.bundle import (
    MAX_BUNDLE_FILE_BYTES,
    MAX_BUNDLE_FILES,
    TOO_LARGE,
    read_bundle_folder,
    read_bundle_zip,
)

TESTS = Path(__file__).resolve().parent
CAREPLAN = {
    "careplan.bpmn": (TESTS / "pathways" / "careplan.bpmn").read_bytes(),
    "forms/hna_small.json": (TESTS / "pathways" / "forms" / "hna_small.json").read_bytes(),
    "forms/decisions.json": (TESTS / "pathways" / "forms" / "decisions.json").read_bytes(),
}


def make_zip(files: dict[str, bytes], *, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(prefix + name, content)
    return buffer.getvalue()


def refusal(data: bytes) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as caught:
        read_bundle_zip(data)
    return caught.value


def test_a_zip_of_the_pathway_folder_reads_as_the_folder_would() -> None:
    bundle = read_bundle_zip(make_zip({**CAREPLAN, "README.md": b"notes"}, prefix="careplan-bundle/"))
    assert bundle.files == CAREPLAN
    assert bundle.ignored == ["README.md"]


def test_a_zip_bomb_is_refused_before_it_is_inflated() -> None:
    bomb = make_zip({"bomb.bpmn": b"\0" * (8 * MAX_BUNDLE_FILE_BYTES)})
    assert len(bomb) < 100_000
    problem = refusal(bomb).problems[0]
    assert problem.code == TOO_LARGE and problem.file == "bomb.bpmn"


def test_a_highly_compressed_entry_under_the_file_limit_is_refused_as_a_bomb() -> None:
    problem = refusal(make_zip({"dense.bpmn": b"\0" * (MAX_BUNDLE_FILE_BYTES - 10)})).problems[0]
    assert problem.code == TOO_LARGE and "compressed" in problem.message


def test_too_many_entries_are_refused() -> None:
    problem = refusal(make_zip({f"f{i}.json": b"{}" for i in range(MAX_BUNDLE_FILES + 1)})).problems[0]
    assert problem.code == TOO_LARGE


@pytest.mark.parametrize(
    "name", ["../escape.bpmn", "/etc/passwd.json", "forms/../../x.json", "C:/x.bpmn", "forms\\x.json"]
)
def test_unsafe_entry_names_are_refused_by_name(name: str) -> None:
    problem = refusal(make_zip({"careplan.bpmn": CAREPLAN["careplan.bpmn"], name: b"{}"})).problems[0]
    assert problem.code == "bundle-entry" and problem.file == name


def test_a_symlink_entry_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("careplan.bpmn", CAREPLAN["careplan.bpmn"])
        link = zipfile.ZipInfo("forms/hna_small.json")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    problem = refusal(buffer.getvalue()).problems[0]
    assert problem.code == "bundle-entry" and "symlink" in problem.message and problem.file == "forms/hna_small.json"


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 not really", b"<bpmn:definitions/>"])
def test_what_is_not_a_zip_archive_is_refused(data: bytes) -> None:
    assert refusal(data).problems[0].code == "bundle-entry"


def test_a_corrupt_entry_is_refused_not_raised() -> None:
    data = bytearray(make_zip({"careplan.bpmn": CAREPLAN["careplan.bpmn"]}))
    start = data.index(b"careplan.bpmn") + len("careplan.bpmn")
    data[start + 10 : start + 40] = b"\xff" * 30  # inside the compressed stream
    assert refusal(bytes(data)).problems[0].code == "bundle-entry"


def test_a_folder_bundle_keeps_to_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text('{"secret": true}')
    folder = tmp_path / "bundle"
    (folder / "forms").mkdir(parents=True)
    for name, content in CAREPLAN.items():
        (folder / name).write_bytes(content)
    (folder / "forms" / "leak.json").symlink_to(outside)
    (folder / ".git").mkdir()
    (folder / ".git" / "config.json").write_text("{}")
    (folder / "notes.txt").write_text("x")
    bundle = read_bundle_folder(folder)
    assert bundle.files == CAREPLAN and bundle.ignored == ["notes.txt"]


def _env(database_url: str, library: Path) -> dict[str, str]:
    return {
        "CAREPATH_DATABASE_URL": database_url,
        "CAREPATH_PATHWAYS_DIR": str(library),
        "CAREPATH_RULES_DIR": str(TESTS.parent / "rules"),
    }


def test_cli_deploys_a_zip_and_a_folder_and_says_what_they_held(tmp_path: Path, database_url: str) -> None:
    library = TESTS / "pathways"
    archive = tmp_path / "careplan.zip"
    archive.write_bytes(make_zip(CAREPLAN))
    runner = CliRunner()
    deployed = runner.invoke(main, ["pathways", "deploy", str(archive)], env=_env(database_url, library))
    assert deployed.exit_code == 0, deployed.output
    assert "contained: careplan.bpmn, forms/decisions.json, forms/hna_small.json" in deployed.output
    assert "test_careplan " in deployed.output
    folder = tmp_path / "assessment"
    folder.mkdir()
    (folder / "assessment.bpmn").write_bytes((library / "assessment.bpmn").read_bytes())
    deployed = runner.invoke(main, ["pathways", "deploy", str(folder)], env=_env(database_url, library))
    assert deployed.exit_code == 0, deployed.output
    assert "from the pathways folder: shared/support.bpmn" in deployed.output


def test_cli_names_what_a_bundle_is_missing(tmp_path: Path, database_url: str) -> None:
    archive = tmp_path / "careplan.zip"
    archive.write_bytes(make_zip({"careplan.bpmn": CAREPLAN["careplan.bpmn"]}))
    deployed = CliRunner().invoke(
        main, ["pathways", "deploy", str(archive)], env=_env(database_url, tmp_path / "empty")
    )
    assert deployed.exit_code == 1
    assert "missing: forms/decisions.json, forms/hna_small.json" in deployed.output
    assert "nothing deployed" in deployed.output


def test_cli_refuses_a_hostile_zip_by_name(tmp_path: Path, database_url: str) -> None:
    archive = tmp_path / "evil.zip"
    archive.write_bytes(make_zip({"careplan.bpmn": b"x", "../../etc/x.json": b"{}"}))
    deployed = CliRunner().invoke(
        main, ["pathways", "deploy", str(archive)], env=_env(database_url, tmp_path / "empty")
    )
    assert deployed.exit_code == 1 and "../../etc/x.json" in deployed.output and "Traceback" not in deployed.output


def test_cli_names_a_missing_decision_table(tmp_path: Path, database_url: str) -> None:
    folder = tmp_path / "triage"
    folder.mkdir()
    (folder / "triage.bpmn").write_bytes((TESTS / "pathways" / "triage.bpmn").read_bytes())
    deployed = CliRunner().invoke(main, ["pathways", "deploy", str(folder)], env=_env(database_url, tmp_path / "empty"))
    assert deployed.exit_code == 1 and "missing: decision distress_triage" in deployed.output
    assert "triage.bpmn:8: triage: decision 'distress_triage' is in no .dmn file" in deployed.output


def test_cli_deploy_path_must_be_a_folder_or_a_zip(tmp_path: Path, database_url: str) -> None:
    diagram = tmp_path / "careplan.bpmn"
    diagram.write_bytes(CAREPLAN["careplan.bpmn"])
    deployed = CliRunner().invoke(main, ["pathways", "deploy", str(diagram)], env=_env(database_url, tmp_path))
    assert deployed.exit_code == 2 and "must be a folder or a .zip archive" in deployed.output
