"""``consentgate init``: a first configuration and the keys, written
for a new operator, nothing overwritten; what it wrote is what ``serve`` runs."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import zipapp
from pathlib import Path

import pytest

from consentgate.cli import main
from consentgate.cli.conventions import program_name
from consentgate.config.loading import load_config
from tests.support.gateproc import free_port, spawn_serve, wait_ready

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def init(directory: Path, *extra: str) -> int:
    return main(["init", str(directory), *extra])


def test_init_writes_the_commented_example_with_the_given_values_and_creates_the_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    etc, state = tmp_path / "etc", tmp_path / "var"
    assert (
        init(
            etc,
            "--public-url",
            "https://gate.example.com",
            "--upstream",
            "http://10.0.0.5:8000",
            "--state-dir",
            str(state),
        )
        == 0
    )
    written = (etc / "consentgate.toml").read_text()
    example = (ROOT / "config.example.toml").read_text()
    # Every comment of the example is kept; only the four values differ.
    differing = [
        (ours, theirs)
        for ours, theirs in zip(written.splitlines(), example.splitlines(), strict=True)
        if ours != theirs
    ]
    assert [ours for ours, _ in differing] == [
        'public_url = "https://gate.example.com"',
        'url = "http://10.0.0.5:8000"',
        f'path = "{state}/consent.db"',
        f'dir = "{state}/keys"',
    ]
    config = load_config(etc / "consentgate.toml", environ={})
    assert (config.store.path, config.keys.dir) == (state / "consent.db", state / "keys")
    assert mode(state / "keys") == 0o700
    assert {mode(file) for file in (state / "keys").iterdir()} == {0o600}
    assert not (state / "consent.db").exists()  # the gate creates it, and records it
    out = capsys.readouterr().out
    assert f"next: consentgate serve --config {etc / 'consentgate.toml'}" in out


def test_init_refuses_to_overwrite_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ("--public-url", "https://gate.example.com", "--upstream", "http://127.0.0.1:8000")
    (tmp_path / "consentgate.toml").write_text("# mine\n")
    assert init(tmp_path, *flags) == 1
    assert (tmp_path / "consentgate.toml").read_text() == "# mine\n"
    assert not (tmp_path / "keys").exists()
    assert "exists; nothing changed" in capsys.readouterr().err

    other = tmp_path / "other"
    (other / "keys").mkdir(parents=True, mode=0o700)
    (other / "keys" / "active").write_text("someone's\n")
    assert init(other, *flags) == 1
    assert not (other / "consentgate.toml").exists()
    assert "is not empty; nothing changed" in capsys.readouterr().err


def test_init_names_a_bad_value_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(tmp_path, "--public-url", "ftp://gate", "--upstream", "http://127.0.0.1:8000") == 2
    assert "server.public_url" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert init(tmp_path, "--upstream", "http://127.0.0.1:8000") == 2  # not a terminal: no asking
    assert "--public-url: required" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


async def test_what_init_wrote_is_what_serve_runs(tmp_path: Path) -> None:
    port = free_port()
    etc = tmp_path / "etc"
    flags = ["--public-url", f"http://127.0.0.1:{port}", "--upstream", "http://127.0.0.1:9"]
    flags += ["--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path / "var")]
    assert init(etc, *flags) == 0
    process = await spawn_serve(etc / "consentgate.toml", stderr=asyncio.subprocess.DEVNULL)
    try:
        await wait_ready(f"http://127.0.0.1:{port}", process)
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    assert (tmp_path / "var" / "consent.db").exists()


def test_run_as_a_single_file_init_names_that_file_in_its_hint(tmp_path: Path) -> None:
    """The single file is run as ``consentgate.pyz`` (docs/deploy.md): the hint must be a
    command that exists there. A zipapp of the same entry point stands for the built one."""
    source = tmp_path / "app"
    source.mkdir()
    entry = "from consentgate.cli import main\nraise SystemExit(main())\n"
    (source / "__main__.py").write_text(entry)
    pyz = tmp_path / "bin" / "consentgate.pyz"
    pyz.parent.mkdir()
    zipapp.create_archive(source, pyz)
    etc = tmp_path / "etc"
    flags = ["--public-url", "https://gate.example.com", "--upstream", "http://127.0.0.1:9"]
    result = subprocess.run(
        [sys.executable, str(pyz), "init", str(etc), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert f"next: consentgate.pyz serve --config {etc / 'consentgate.toml'}" in result.stdout


@pytest.mark.parametrize(
    ("argv0", "name"),
    [
        ("/usr/local/bin/consentgate.pyz", "consentgate.pyz"),
        ("dist/gate.pyz", "gate.pyz"),
        ("/usr/bin/consentgate", "consentgate"),
        ("/src/consentgate/__main__.py", "consentgate"),
        ("", "consentgate"),
    ],
)
def test_the_program_names_itself_as_it_was_run(argv0: str, name: str) -> None:
    assert program_name(argv0) == name
