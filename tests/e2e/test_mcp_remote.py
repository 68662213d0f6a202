"""The real mcp-remote (0.15) through the gate in front of FastMCP's OAuthProxy.

Before it opens the browser for a registration it cached, mcp-remote fetches the
authorization URL itself (``Accept: application/json``, Node's fetch) and calls the
registration stale on a 400/401 ``invalid_client``: it then forgets it, registers
again and opens the browser with the new client. The gate answers that check
without relaying anything (``web/consent_flow/authorize.py``): ``invalid_client`` for a client it
does not know, ``interaction_required`` for one it does.

mcp-remote is a Node program, not a Python extra: install it anywhere outside the
repository (``npm install mcp-remote@0.15.1`` in a scratch directory) and point
``MCP_REMOTE_CLIENT_JS`` at its ``node_modules/mcp-remote/dist/client.js`` (not a
``CONSENTGATE_`` name: the gates these tests start would read it as configuration);
without it this module is skipped, except under ``.ci/run``, which installs it
and sets ``CI_REQUIRE_MCP_REMOTE=1``. It runs with an empty PATH, so it finds no
browser to open; the run stops once it tried, and the test reads the URL it printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import urllib.parse
from pathlib import Path

import pytest

from tests.e2e.peers import require_peers

require_peers()

from tests.conftest import bound_socket  # noqa: E402
from tests.e2e.conftest import GatedStack  # noqa: E402
from tests.support.browsersim import Browser  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLIENT_JS = os.environ.get("MCP_REMOTE_CLIENT_JS", "")
NODE = shutil.which("node")
if not (CLIENT_JS and Path(CLIENT_JS).is_file() and NODE):
    if os.environ.get("CI_REQUIRE_MCP_REMOTE") == "1":  # .ci/run installs it: never skip there
        pytest.fail(
            f"CI_REQUIRE_MCP_REMOTE=1 but MCP_REMOTE_CLIENT_JS={CLIENT_JS!r} or node is missing",
            pytrace=False,
        )
    pytest.skip(
        "set MCP_REMOTE_CLIENT_JS to mcp-remote's dist/client.js "
        "(npm install mcp-remote@0.15.1 outside the repository) and have node",
        allow_module_level=True,
    )

#: What mcp-remote says when it stops for the person: it tried to open a browser, or
#: it saw its own earlier flow still pending and waits for that one's callback.
ENDS = ("open a browser automatically", "Browser opened", "already under way")
#: Longest a run may take before the test gives up on it.
RUN_SECONDS = 30.0


def free_port() -> int:
    sock = bound_socket("127.0.0.1")
    port: int = sock.getsockname()[1]
    sock.close()
    return port


async def run_mcp_remote(gated: GatedStack, home: Path, port: int) -> list[str]:
    """Run mcp-remote against the gate until it tried to open a browser; the
    authorization URLs it printed for the person, in order. ``port`` is its callback
    port: the same each run, or its redirect URI changes and it registers anew."""
    empty = home / "bin"
    empty.mkdir(exist_ok=True)
    env = {
        "HOME": str(home),
        "MCP_REMOTE_CONFIG_DIR": str(home / "mcp-auth"),
        "PATH": str(empty),  # no browser or opener is found: nothing is opened
    }
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE,
        CLIENT_JS,
        gated.mcp_url,
        str(port),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(RUN_SECONDS):
            while raw := await process.stderr.readline():
                lines.append(raw.decode(errors="replace").rstrip())
                if any(end in lines[-1] for end in ENDS):
                    break
    except TimeoutError:
        pytest.fail("mcp-remote did not get to the browser:\n" + "\n".join(lines))
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
    urls = [line for line in lines if line.startswith(f"{gated.url}/authorize?")]
    assert urls, "\n".join(lines)
    return urls


def client_id_of(url: str) -> str:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["client_id"]


def cached_registration(home: Path) -> Path:
    (found,) = (home / "mcp-auth").rglob("*client_info.json")
    return found


async def test_mcp_remote_with_a_registration_the_gate_knows_opens_the_browser_with_it(
    gated: GatedStack, tmp_path: Path
) -> None:
    port = free_port()
    first = await run_mcp_remote(gated, tmp_path, port)
    registered = client_id_of(first[-1])
    # Started again with its registration cached: it checks the URL first, is told a
    # person must open it, and opens the browser with the same client.
    again = await run_mcp_remote(gated, tmp_path, port)

    assert client_id_of(again[-1]) == registered
    assert len(gated.fastmcp.log.reached("/register")) == 1
    assert gated.fastmcp.log.reached("/authorize") == []
    # The URL it opens gets the person the consent page.
    async with Browser(gated.url) as browser:
        page = await browser.get(again[-1].removeprefix(gated.url))
    assert page.is_consent_page


async def test_mcp_remote_with_a_registration_the_gate_does_not_know_registers_again(
    gated: GatedStack, tmp_path: Path
) -> None:
    """FastMCP itself answers such a check ``400 invalid_request`` (not a word mcp-remote
    reads as stale); the gate answers ``invalid_client``, so mcp-remote drops the
    registration and registers again, through the gate.

    What mcp-remote 0.15.1 does next is its own: the new authorization URL carries a
    new PKCE challenge, its guard against concurrent sign-ins still holds the first
    one, and it prints "A sign-in for this server is already under way" and waits. The
    next start uses the fresh registration (the first test's path)."""
    port = free_port()
    await run_mcp_remote(gated, tmp_path, port)
    cached = cached_registration(tmp_path)
    info = json.loads(cached.read_text())
    info["client_id"] = "forgotten-" + info["client_id"]
    cached.write_text(json.dumps(info))

    urls = await run_mcp_remote(gated, tmp_path, port)

    assert [client_id_of(url) for url in urls] == [info["client_id"]]
    fresh = json.loads(cached_registration(tmp_path).read_text())["client_id"]
    assert fresh != info["client_id"]
    assert len(gated.fastmcp.log.reached("/register")) == 2
    # Started again, it uses the new registration, which the gate knows.
    again = await run_mcp_remote(gated, tmp_path, port)
    assert [client_id_of(url) for url in again] == [fresh]
    assert len(gated.fastmcp.log.reached("/register")) == 2
    assert gated.fastmcp.log.reached("/authorize") == []
