"""Files an author or operator hands over on disk -- diagrams, bundle archives -- are read only when they are
regular files within the bounds: a named pipe, a device that never ends or a huge file is a located problem at
once, never a hang or a whole file in memory. (Rule, catalogue and test files: tests/test_yaml_bounds.py.) The
secret files the settings name are read the same way: a mistyped path must not hang the server's start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import main
from engine.errors import DiagramError, InvalidInputError
from engine.pathways.bundle import MAX_BUNDLE_BYTES, MAX_BUNDLE_FILE_BYTES, TOO_LARGE, FolderFiles, read_bundle_zip_file
from engine.pathways.diagrams import read_diagram
from engine.settings import MAX_SECRET_FILE_BYTES, Settings

TESTS = Path(__file__).resolve().parent


def test_a_diagram_over_the_bound_is_refused_unparsed(tmp_path: Path) -> None:
    big = tmp_path / "big.bpmn"
    text = (TESTS / "pathways" / "assessment.bpmn").read_text()
    big.write_text(
        text.replace("</bpmn:definitions>", "<!--" + "x" * MAX_BUNDLE_FILE_BYTES + "-->\n</bpmn:definitions>")
    )
    with pytest.raises(DiagramError) as raised:
        read_diagram(FolderFiles(tmp_path), "big.bpmn")
    assert [(p.code, p.message) for p in raised.value.problems] == [
        (TOO_LARGE, "the diagram is over 1 MiB, more than any pathway needs")
    ]
    result = CliRunner().invoke(main, ["validate", str(big)])
    assert result.exit_code == 1 and f"{big}: the diagram is over 1 MiB" in result.output


def test_a_diagram_that_is_a_pipe_or_a_device_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.bpmn")
    (tmp_path / "zero.bpmn").symlink_to("/dev/zero")
    for name in ("pipe.bpmn", "zero.bpmn"):
        with pytest.raises(DiagramError) as raised:
            read_diagram(FolderFiles(tmp_path), name)
        assert [p.code for p in raised.value.problems] == ["not-found"]
        result = CliRunner().invoke(main, ["validate", str(tmp_path / name)])
        assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))


def test_a_bundle_archive_that_is_a_pipe_a_device_or_huge_is_refused_unread(tmp_path: Path) -> None:
    pipe, device, huge = tmp_path / "pipe.zip", tmp_path / "zero.zip", tmp_path / "huge.zip"
    os.mkfifo(pipe)
    device.symlink_to("/dev/zero")
    huge.write_bytes(b"PK" + b"\0" * MAX_BUNDLE_BYTES)
    expected = {
        pipe: ("bundle-entry", "not a regular file"),
        device: ("bundle-entry", "not a regular file"),
        huge: (TOO_LARGE, "the archive is over 16 MiB"),
    }
    for path, (code, message) in expected.items():
        with pytest.raises(InvalidInputError) as raised:
            read_bundle_zip_file(path)
        assert [(p.file, p.code, p.message) for p in raised.value.problems] == [(str(path), code, message)]


OIDC = {"CAREPATH_OIDC_ISSUER": "https://idp.example.org", "CAREPATH_OIDC_AUDIENCE": "api://carepath"}


def test_a_secret_file_that_is_a_pipe_a_device_or_huge_refuses_the_start_at_once(tmp_path: Path) -> None:
    pipe, device, huge = tmp_path / "pipe.key", tmp_path / "zero.key", tmp_path / "huge.key"
    os.mkfifo(pipe)
    device.symlink_to("/dev/zero")
    huge.write_bytes(b"k" * (MAX_SECRET_FILE_BYTES + 1))
    expected = {pipe: "not a regular file", device: "not a regular file", huge: "the file is over 64 KiB"}
    for path, reason in expected.items():
        for setting, env in (
            ("CAREPATH_TRAIL_KEY_FILE", {}),
            ("CAREPATH_OIDC_CLIENT_SECRET_FILE", {**OIDC, "CAREPATH_OIDC_CLIENT_ID": "carepath-web"}),
        ):
            with pytest.raises(ValueError) as raised:
                Settings.from_env({**env, setting: str(path)})
            assert str(raised.value) == f"{setting} {path} cannot be read: {reason}"
    missing = tmp_path / "missing.key"
    with pytest.raises(ValueError, match=f"^CAREPATH_TRAIL_KEY_FILE {missing} cannot be read: No such file"):
        Settings.from_env({"CAREPATH_TRAIL_KEY_FILE": str(missing)})


def test_a_secret_file_at_the_bound_is_read_and_not_echoed(tmp_path: Path) -> None:
    secret = tmp_path / "client.secret"
    secret.write_bytes(b"s" * (MAX_SECRET_FILE_BYTES - 1) + b"\n")
    settings = Settings.from_env(
        {**OIDC, "CAREPATH_OIDC_CLIENT_ID": "carepath-web", "CAREPATH_OIDC_CLIENT_SECRET_FILE": str(secret)}
    )
    assert settings.oidc is not None and settings.oidc.client_secret() == "s" * (MAX_SECRET_FILE_BYTES - 1)
    secret.write_bytes(b"\xffsecret-bytes")
    with pytest.raises(ValueError) as raised:
        settings.oidc.client_secret()
    assert str(raised.value) == f"CAREPATH_OIDC_CLIENT_SECRET_FILE {secret} is not UTF-8 text"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
