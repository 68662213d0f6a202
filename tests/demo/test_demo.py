"""``consentgate demo``: the whole flow through the demo stack, and its clean exit."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import aiohttp

from consentgate.demo import run_demo
from tests.support.browsersim import Browser, Page


def on_loopback(url: str) -> str:
    """``url`` with a ``*.localhost`` host replaced by 127.0.0.1, as a browser resolves
    it (RFC 6761 §6.3) and as the system resolver here may not: no DNS query leaves."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname and parts.hostname.endswith(".localhost"):
        return parts._replace(netloc=f"127.0.0.1:{parts.port}").geturl()
    return url


async def follow(browser: Browser, page: Page, limit: int = 10) -> Page:
    """Follow redirects the way a browser navigates (cross-site after leaving the gate)."""
    for _ in range(limit):
        if page.status not in (301, 302, 303, 307, 308):
            return page
        page = await browser.get(on_loopback(page.location), site="cross-site")
    raise AssertionError("too many redirects")


async def test_the_demo_walks_through_registration_consent_and_a_tool_call(
    tmp_path: Path,
) -> None:
    async with run_demo(0, tmp_path) as stack, Browser(stack.gate_url) as browser:
        start = await browser.get(f"{stack.client_url}/start")
        consent = await follow(browser, start)
        assert consent.is_consent_page
        assert "Demo MCP Client" in consent.text
        assert "Use the server" in consent.text
        approved = await browser.answer(consent, "approve", remember=True)
        assert approved.status == 303
        login = await follow(browser, approved)
        assert "Demo identity provider" in login.text
        action = re.search(r'action="([^"]+)"', login.text)
        assert action is not None
        async with browser.session.post(
            stack.idp_url + action.group(1).replace("&amp;", "&"),
            data={"user": "alice"},
            allow_redirects=False,
        ) as response:
            back = Page(response.status, response.headers, await response.text())
        result = await follow(browser, back)
        assert "Hello alice, from the demo MCP server." in result.text


async def test_the_demo_attack_stops_at_the_consent_page(tmp_path: Path) -> None:
    async with run_demo(0, tmp_path) as stack, Browser(stack.gate_url) as browser:
        link = await browser.get(f"{stack.client_url}/attack")
        consent = await follow(browser, link)
        assert consent.is_consent_page
        assert "Totally Legit Assistant" in consent.text
        # The headline host reads as another site, not as "an application on this
        # computer" like the demo client's 127.0.0.1: the headline gives it away.
        assert '<p class="host" aria-describedby="destination-heading"><bdi>attacker.localhost' in (
            consent.text
        )
        assert "an application on this computer" not in consent.text
        client_host = stack.client_url.removeprefix("http://")  # 127.0.0.1:<port>
        assert client_host not in consent.text
        # A warning is shown, so Deny is the first, primary action.
        assert consent.text.index('value="deny" class="deny primary"') < consent.text.index(
            'value="approve"'
        )
        denied = await browser.answer(consent, "deny")
        assert denied.status == 303
        result = await follow(browser, denied)
        assert "received no code" in result.text


async def test_demo_command_prints_the_url_and_stops_cleanly_on_ctrl_c() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consentgate",
        "demo",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        async with asyncio.timeout(30):
            while not any("Press Ctrl-C" in line for line in lines):
                line = await process.stdout.readline()
                assert line, f"the demo exited early: {lines}"
                lines.append(line.decode())
        text = "".join(lines)
        client_url = re.search(r"Open the demo MCP client:\s+(\S+)", text)
        data_dir = re.search(r"data in (\S+)\)", text)
        assert client_url is not None
        assert data_dir is not None
        assert Path(data_dir.group(1)).is_dir()
        async with aiohttp.ClientSession() as session, session.get(client_url.group(1)) as page:
            assert page.status == 200
            assert "Demo MCP client" in await page.text()
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0
        assert not Path(data_dir.group(1)).exists()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_the_demo_on_a_port_in_use_names_the_option_that_fixes_it() -> None:
    from tests.conftest import bound_socket

    taken = bound_socket()
    try:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "consentgate", "demo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        taken.close()
    assert done.returncode == 1
    assert done.stderr == (
        f"consentgate: error: cannot start the demo on port {port}: Address already in use; "
        "choose another with --port N (0: any free port)\n"
    )
