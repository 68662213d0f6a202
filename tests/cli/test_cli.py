"""The command line: exit codes and one clear line, never a traceback."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from packaging.version import Version

from consentgate import __version__
from consentgate.cli import main
from consentgate.core.schema_versions import POSTGRES_SCHEMA, SQLITE_SCHEMA
from tests.conftest import StartUpstream, bound_socket
from tests.support.gateproc import gate_process, write_config

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consentgate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_names_what_a_bug_report_needs() -> None:
    from importlib.metadata import version

    result = run("--version")
    assert result.returncode == 0
    assert result.stdout == (
        f"consentgate {__version__} (Python {platform.python_version()}, "
        f"aiohttp {version('aiohttp')}, httptools {version('httptools')}, "
        f"aiosqlite {version('aiosqlite')}, "
        f"cryptography {version('cryptography')}, asyncpg {version('asyncpg')})\n"
        f"store schema: SQLite {SQLITE_SCHEMA}, PostgreSQL {POSTGRES_SCHEMA} (an older "
        "store is migrated forward; a newer one is opened only when it records that it "
        "still runs these)\n"
    )


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """``consentgate --version | head -1``: the pipe is closed before the second line."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "consentgate", "--version"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert result.stderr == ""


def test_the_schema_versions_the_version_line_names_are_the_stores() -> None:
    from consentgate.store.postgres.postgres_schema import SCHEMA_VERSION as POSTGRES
    from consentgate.store.sqlite.sqlite_schema import SCHEMA_VERSION as SQLITE

    assert (SQLITE_SCHEMA, POSTGRES_SCHEMA) == (SQLITE, POSTGRES)


def test_the_version_is_later_than_every_release_in_the_changelog() -> None:
    """A build of today's code must not call itself a release it differs from: the
    version moves on once a release is made (a ``.devN`` until the next one)."""
    released = re.findall(r"^## (\d+\.\d+\.\d+)$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert released
    assert all(Version(__version__) > Version(release) for release in released)


def test_check_config_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(ROOT / "config.example.toml")]) == 0
    assert capsys.readouterr().out == (
        f"{ROOT / 'config.example.toml'}: the file is valid\n"
        "this machine: nothing that stops serve\n"
    )


def test_check_config_warns_once_about_each_key_that_is_now_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    older = tmp_path / "older.toml"
    example = (ROOT / "config.example.toml").read_text()
    older.write_text(
        example.replace("# max_pending_per_address = 50", "max_pending_per_address = 50")
    )
    assert main(["check-config", "--offline", "--config", str(older)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{older}: the file is valid\n")
    assert "warning" not in out
    assert err.count("consentgate: warning: consent.max_pending_per_address: ignored") == 1
    assert "consent.max_pending:" not in err


def test_check_config_lists_every_error_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nlisten = "x"\n[upstream]\nurl = "ftp://x"\ncolour = "red"\n')
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "has 4 error(s)" in err
    assert "server.public_url: required, not set" in err
    assert "server.listen" in err and "'x'" in err
    assert "upstream.url" in err and "'ftp://x'" in err
    assert "upstream.colour: unknown key" in err


def test_serve_with_a_bad_config_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\npublic_url = "https://x.example"\n[upstream]\nurl = "nope"\n')
    result = run("serve", "--config", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith("consentgate: error: upstream.url:")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_serve_with_an_unreadable_config_exits_2(tmp_path: Path) -> None:
    result = run("serve", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2
    assert "cannot read the configuration" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_a_port_in_use_says_so_and_exits_1(tmp_path: Path) -> None:
    occupied = bound_socket()
    port = occupied.getsockname()[1]
    config = write_config(tmp_path, "http://127.0.0.1:9", port)
    try:
        result = run("serve", "--config", str(config))
    finally:
        occupied.close()
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"consentgate: error: server.listen: cannot listen on 127.0.0.1:{port}: the address "
        "is already in use (another process listens there: stop it, or set server.listen to "
        "a free port)"
    )
    assert "Traceback" not in result.stderr


def test_missing_config_argument_is_a_usage_error() -> None:
    result = run("serve")
    assert result.returncode == 2
    assert "--config" in result.stderr


@pytest.mark.slow  # a consentgate serve process
async def test_sigterm_lets_in_flight_requests_finish_then_exits_0(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    arrived = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        arrived.set()
        await asyncio.sleep(1.0)
        return web.Response(text="finished")

    app = web.Application()
    app.router.add_get("/slow", slow)
    upstream = await start_upstream(app)
    async with gate_process(tmp_path, upstream) as gate, aiohttp.ClientSession() as session:
        in_flight = asyncio.ensure_future(session.get(f"{gate.url}/slow"))
        await asyncio.wait_for(arrived.wait(), 10)
        gate.process.send_signal(signal.SIGTERM)
        response = await asyncio.wait_for(in_flight, 10)
        assert response.status == 200
        assert await response.text() == "finished"
        response.release()
        assert await asyncio.wait_for(gate.process.wait(), 10) == 0
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{gate.url}/slow")
        log = await gate.stderr_text()
        assert "stopping" in log and "stopped" in log
        assert "Traceback" not in log


@pytest.mark.slow  # a consentgate serve process
async def test_sighup_makes_a_running_gate_sign_with_the_rotated_key(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    import json
    import urllib.parse

    from tests.support.browsersim import Browser
    from tests.support.fakeproxy import FakeProxy

    proxy = FakeProxy()
    upstream = await start_upstream(proxy.app())
    async with gate_process(tmp_path, upstream) as gate:
        proxy.public_url = gate.url
        rotated = await asyncio.to_thread(run, "keys", "rotate", "--config", str(gate.config_path))
        assert rotated.returncode == 0, rotated.stderr
        new_kid = rotated.stdout.split()[4].rstrip(";")
        gate.process.send_signal(signal.SIGHUP)
        params = {
            "client_id": "c1",
            "redirect_uri": "https://client.example/cb",
            "scope": "openid",
            "state": "s",
            "prompt": "consent",  # ask every time, so each loop records a new approval
        }
        async with Browser(gate.url) as browser:
            for _ in range(50):  # the signal is handled asynchronously: wait for its effect
                page = await browser.get("/authorize?" + urllib.parse.urlencode(params))
                assert page.is_consent_page
                done = await browser.answer(page, remember=True)
                assert done.status == 303
                listed = await asyncio.to_thread(
                    run, "consents", "list", "--json", "--config", str(gate.config_path)
                )
                kids = {record["key_id"] for record in json.loads(listed.stdout)}
                if new_kid in kids:
                    break
                await asyncio.sleep(0.1)
        assert new_kid in kids
    log = await gate.stderr_text()
    assert f"keys reloaded active_key={new_kid}" in log
