"""The single file: ``dist/consentgate.pyz``, copied alone into an empty
directory and run by a bare ``python3`` (no virtualenv, none of the dependencies
installed), is the gate of the end-to-end stack: FastMCP's OAuthProxy, the real
IdP, a real MCP client. Its other commands (``--version``, ``check-config``,
``keys``, ``consents``, ``store init``, ``demo``) run from it too.

Runs when ``TEST_PYZ`` names the file (``.ci/run`` builds it with
``python tools/build_pyz.py --python /usr/bin/python3`` and sets it, with
``CI_REQUIRE_PYZ=1`` so that it cannot skip); ``TEST_PYZ_PYTHON`` is the
bare interpreter (default ``/usr/bin/python3``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.peers import require_peers

require_peers()

from fastmcp import Client  # noqa: E402

from tests.conftest import bound_socket  # noqa: E402
from tests.e2e.people import BrowserOAuth, Person  # noqa: E402
from tests.e2e.stack import FastMcpServer, IdP, run_fastmcp  # noqa: E402
from tests.support.browsersim import Browser  # noqa: E402
from tests.support.gateproc import GateProcess, gate_process, write_config  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOST = "127.0.0.1"


@dataclass
class Pyz:
    """The file, alone in its directory, and how to run it as an operator would."""

    command: list[str]
    env: dict[str, str]
    home: Path

    def run(self, *args: str, seconds: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args],
            capture_output=True,
            text=True,
            timeout=seconds,
            env=self.env,
            cwd=self.home,
            check=False,
        )


@pytest.fixture
def pyz(tmp_path: Path) -> Pyz:
    built = os.environ.get("TEST_PYZ", "")
    if not built:
        reason = "TEST_PYZ is not set (build with: python tools/build_pyz.py)"
        if os.environ.get("CI_REQUIRE_PYZ") == "1":
            pytest.fail(f"CI_REQUIRE_PYZ=1 and {reason}", pytrace=False)
        pytest.skip(reason)
    python = os.environ.get("TEST_PYZ_PYTHON", "/usr/bin/python3")
    home = tmp_path / "empty"
    home.mkdir()
    copy = home / "consentgate.pyz"
    shutil.copy2(built, copy)
    # The bare interpreter: no checkout, no virtualenv, nothing of ours on its path.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "SHIV_ROOT": str(tmp_path / "shiv")}
    bare = subprocess.run(
        [python, "-c", "import aiohttp"], capture_output=True, env=env, cwd=home, check=False
    )
    assert bare.returncode != 0, f"{python} has aiohttp installed: not a bare interpreter"
    return Pyz([python, str(copy)], env, home)


@dataclass
class PyzStack:
    gate: GateProcess
    fastmcp: FastMcpServer
    idp: IdP


@pytest.fixture
async def pyz_stack(pyz: Pyz, idp: IdP, tmp_path: Path) -> AsyncIterator[PyzStack]:
    sock = bound_socket(HOST)
    fastmcp_url = f"http://{HOST}:{sock.getsockname()[1]}"
    data = tmp_path / "gate"
    data.mkdir()
    sections = {"upstream": {"blocked_paths": ["/consent"]}}
    async with gate_process(
        data, fastmcp_url, sections, command=pyz.command, env=pyz.env, cwd=pyz.home
    ) as gate:
        upstream = await idp.register_client(f"{gate.url}/auth/callback")
        async with run_fastmcp(sock, idp=idp, upstream=upstream, public_url=gate.url) as fastmcp:
            yield PyzStack(gate, fastmcp, idp)


async def test_the_pyz_is_the_gate_of_a_real_sign_in(pyz_stack: PyzStack) -> None:
    url = pyz_stack.gate.url
    async with Browser(url) as browser:
        alice = Person(browser, pyz_stack.idp, "alice")
        auth = BrowserOAuth(alice, client_name="E2E Notes App")
        async with Client(f"{url}/mcp", auth=auth) as client:
            added = await client.call_tool("add", {"a": 2, "b": 3})
    assert added.data == 5
    (sign_in,) = alice.sign_ins
    assert sign_in.consent_page is not None
    assert "E2E Notes App" in sign_in.consent_page.text  # the pyz's own templates
    hops = [(hop.url.split("?")[0], hop.page.status) for hop in sign_in.trip.hops]
    assert hops == [
        (f"{url}/authorize", 200),
        (pyz_stack.idp.authorize_url, 200),
        (pyz_stack.idp.authorize_url, 302),
        (f"{url}/auth/callback", 302),
    ]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/_consentgate/static/consent.css") as asset,
    ):
        assert asset.status == 200  # the static assets ship inside the file


def test_the_pyz_runs_every_command_from_an_empty_directory(pyz: Pyz, tmp_path: Path) -> None:
    version = pyz.run("--version")
    assert version.returncode == 0, version.stderr
    assert re.fullmatch(
        r"consentgate \S+ \(Python 3\.\d+\.\d+, aiohttp \S+, httptools \S+, aiosqlite \S+, "
        r"cryptography \S+, asyncpg \S+\)\n"
        r"store schema: SQLite \d+, PostgreSQL \d+ \(an older store is migrated forward; "
        r"a newer one is opened only when it records that it still runs these\)\n",
        version.stdout,
    ), version.stdout
    first = pyz.run(
        "init",
        str(tmp_path / "etc"),
        "--public-url",
        "https://gate.example.com",
        "--upstream",
        "http://127.0.0.1:9",
    )
    assert first.returncode == 0, first.stderr  # the example ships inside the file
    assert (tmp_path / "etc" / "keys").is_dir()
    data = tmp_path / "data"
    data.mkdir()
    config = str(write_config(data, "http://127.0.0.1:9", 8080))
    assert pyz.run("check-config", "--config", config).stdout == (
        f"{config}: the file is valid\nthis machine: nothing that stops serve\n"
    )
    assert "next: consentgate.pyz serve --config" in first.stdout  # it names itself
    assert pyz.run("keys", "generate", "--config", config).returncode == 0
    init = pyz.run("store", "init", "--config", config)
    assert init.returncode == 0, init.stderr
    listing = pyz.run("consents", "list", "--config", config, "--json")
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout) == []


def test_the_pyz_speaks_every_language_from_its_compiled_catalogs(pyz: Pyz, tmp_path: Path) -> None:
    """The file carries the wheel's .mo files (hatch_build.py), not the .po sources
    alone, and Babel's CLDR data for the shipped languages (tools/build_pyz.py prunes
    the rest): the sample pages come out in German and in Arabic, right to left, with
    Arabic dates."""
    with zipfile.ZipFile(pyz.command[1]) as archive:
        names = archive.namelist()
    for language in ("en", "de", "fr", "es", "ja", "ar"):
        assert f"site-packages/consentgate/locales/{language}/LC_MESSAGES/consentgate.mo" in names
        assert f"site-packages/babel/locale-data/{language}.dat" in names
    assert "site-packages/babel/locale-data/zu.dat" not in names
    data = tmp_path / "data"
    data.mkdir()
    config = str(write_config(data, "http://127.0.0.1:9", 8080))
    for language, html_tag, word in (
        ("de", '<html lang="de" dir="ltr">', ">Zulassen</button>"),
        ("ar", '<html lang="ar" dir="rtl">', "تاريخ الانتهاء"),
    ):
        out = tmp_path / language
        done = pyz.run("pages", "--config", config, "--out", str(out), "--language", language)
        assert done.returncode == 0, done.stderr
        consent = (out / "consent.html").read_text()
        assert html_tag in consent
        assert word in consent + (out / "approvals.html").read_text()


async def test_the_pyz_runs_the_demo(pyz: Pyz) -> None:
    process = await asyncio.create_subprocess_exec(
        *pyz.command,
        "demo",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=pyz.env,
        cwd=pyz.home,
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        async with asyncio.timeout(60):
            while not any("Press Ctrl-C" in line for line in lines):
                line = await process.stdout.readline()
                assert line, f"the demo exited early: {lines}"
                lines.append(line.decode())
        client_url = re.search(r"Open the demo MCP client:\s+(\S+)", "".join(lines))
        assert client_url is not None
        async with aiohttp.ClientSession() as session, session.get(client_url.group(1)) as page:
            assert page.status == 200
            assert "Demo MCP client" in await page.text()
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
