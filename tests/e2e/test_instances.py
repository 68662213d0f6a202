"""Three gate processes on one PostgreSQL store behind a round-robin front, in front of
the real FastMCP OAuthProxy and IdP.

Each gate is a ``consentgate serve`` process with its own configuration file, as on
three hosts; they share the database and the key directory (made once, with
``consentgate keys generate``, as docs/deploy.md says). The person's browser opens
a new connection per request, and the front sends each of its steps at the gate to
the next gate in turn, so one sign-in crosses all three; every other connection
(the MCP client's discovery, registration, token and tool calls) is rotated over
the gates as a balancer without sticky sessions would.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.peers import require_peers

require_peers()

# Everything below needs the extra.
from fastmcp import Client  # noqa: E402

from tests.conftest import bound_socket  # noqa: E402
from tests.e2e.people import Attacker, BrowserOAuth, Person  # noqa: E402
from tests.e2e.stack import HOST, FastMcpServer, IdP, run_fastmcp  # noqa: E402
from tests.support.browsersim import Browser  # noqa: E402
from tests.support.gateproc import GateProcess, gate_process, write_config  # noqa: E402
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster  # noqa: E402
from tests.support.roundrobin import RoundRobin  # noqa: E402

__all__ = ["postgres_cluster"]  # the session fixture, used here by name

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INSTANCES = 3
#: The requests a person's browser makes at the gate during a sign-in.
BROWSER_STEPS = ("/authorize", "/_consentgate/consent", "/auth/callback")


def request_path(request_line: str) -> str:
    """The path of "GET /authorize?x=y HTTP/1.1"."""
    parts = request_line.split(" ")
    return urllib.parse.urlsplit(parts[1]).path if len(parts) == 3 else ""


class BrowserStepsInTurn:
    """Steers each browser step at the gate to the next gate; the rest is rotated."""

    def __init__(self) -> None:
        self._turn = itertools.count()

    def __call__(self, request_line: str) -> int | None:
        return next(self._turn) if request_path(request_line) in BROWSER_STEPS else None


@dataclass
class Deployment:
    url: str  # the front's: every gate's public_url, FastMCP's base_url
    front: RoundRobin
    gates: list[GateProcess]
    fastmcp: FastMcpServer
    idp: IdP

    def browser_steps(self) -> list[tuple[int, str]]:
        """(gate index, path) of each browser step, in order."""
        return [
            (index, request_path(line))
            for index, line in self.front.requests
            if request_path(line) in BROWSER_STEPS
        ]


async def consentgate(*args: str) -> str:
    """Run a ``consentgate`` command as an operator would; its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consentgate",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    return output.decode()


@pytest.fixture
async def deployment(
    idp: IdP, postgres_cluster: PostgresCluster, tmp_path: Path
) -> AsyncIterator[Deployment]:
    database = postgres_cluster.create_database(owner=GATE_ROLE)
    sock = bound_socket(HOST)
    fastmcp_url = f"http://{HOST}:{sock.getsockname()[1]}"
    backends: list[tuple[str, int]] = []
    front = RoundRobin(backends, steer=BrowserStepsInTurn())
    async with front.serve() as url, AsyncExitStack() as stack:
        sections: dict[str, dict[str, Any]] = {
            "server": {"public_url": url},
            "upstream": {"blocked_paths": ["/consent"]},
            "store": {"url": postgres_cluster.dsn(database, user=GATE_ROLE)},
            "keys": {"dir": str(tmp_path / "keys")},
        }
        homes = [tmp_path / f"gate-{n}" for n in range(INSTANCES)]
        for home in homes:
            home.mkdir()
        await consentgate(
            "keys", "generate", "--config", str(write_config(homes[0], fastmcp_url, 0, sections))
        )
        gates = [
            await stack.enter_async_context(gate_process(home, fastmcp_url, sections))
            for home in homes
        ]
        backends.extend((HOST, int(gate.url.rsplit(":", 1)[1])) for gate in gates)
        upstream = await idp.register_client(f"{url}/auth/callback")
        fastmcp = await stack.enter_async_context(
            run_fastmcp(sock, idp=idp, upstream=upstream, public_url=url)
        )
        yield Deployment(url, front, gates, fastmcp, idp)


async def test_a_sign_in_whose_steps_land_on_three_gate_processes(
    deployment: Deployment,
) -> None:
    async with Browser(deployment.url, fresh_connections=True) as browser:
        alice = Person(browser, deployment.idp, "alice")
        first = BrowserOAuth(alice, remember=True, client_name="E2E Notes App")
        async with Client(f"{deployment.url}/mcp", auth=first) as client:
            added = await client.call_tool("add", {"a": 2, "b": 3})
        client_info = first.context.client_info
        assert client_info is not None
        # The application again, without its tokens: the remembered approval, stored
        # by the second gate, lets the first gate relay at once.
        again = BrowserOAuth(
            alice, client_id=client_info.client_id, callback_port=first.redirect_port
        )
        async with Client(f"{deployment.url}/mcp", auth=again) as client:
            me = await client.call_tool("whoami", {})

    assert added.data == 5
    assert me.data == {"subject": "alice"}
    asked, silent = alice.sign_ins
    assert asked.consent_page is not None
    assert silent.consent_page is None
    # The consent page from gate 0, the answer to gate 1, the IdP's callback to gate 2;
    # then the remembered approval honoured by gate 0, the callback by gate 1.
    assert deployment.browser_steps() == [
        (0, "/authorize"),
        (1, "/_consentgate/consent"),
        (2, "/auth/callback"),
        (0, "/authorize"),
        (1, "/auth/callback"),
    ]
    hops = [(hop.url.split("?")[0], hop.page.status) for hop in silent.trip.hops]
    assert hops == [
        (f"{deployment.url}/authorize", 302),
        (deployment.idp.authorize_url, 200),
        (deployment.idp.authorize_url, 302),
        (f"{deployment.url}/auth/callback", 302),
    ]
    # Each MCP client keeps one connection for discovery, registration, the token
    # exchange and its tool calls; the rotation gave the first to gate 0 (so the code
    # the callback at gate 2 let through was redeemed at gate 0), the second to gate 1.
    others = [
        (index, request_path(line))
        for index, line in deployment.front.requests
        if request_path(line) not in BROWSER_STEPS
    ]
    assert others == [(0, "/mcp"), (1, "/mcp")]
    log = deployment.fastmcp.log
    assert len(log.reached("/register")) == 1
    assert len(log.reached("/authorize")) == 2
    assert len(log.reached("/auth/callback")) == 2
    assert len(log.reached("/token")) == 2
    for gate in deployment.gates:
        assert gate.process.returncode is None


async def test_a_revocation_with_the_cli_is_honoured_by_every_gate_at_once(
    deployment: Deployment,
) -> None:
    async with Browser(deployment.url, fresh_connections=True) as browser:
        alice = Person(browser, deployment.idp, "alice")
        auth = BrowserOAuth(alice, remember=True, client_name="E2E Notes App")
        async with Client(f"{deployment.url}/mcp", auth=auth) as client:
            await client.call_tool("add", {"a": 1, "b": 1})
        client_info = auth.context.client_info
        assert client_info is not None and client_info.client_id
        (sign_in,) = alice.sign_ins
        opened = sign_in.trip.hops[0].url  # the application's authorization request
        # Every gate relays it at once, so every gate holds the approval in its cache.
        before = [await browser.get(opened) for _ in range(INSTANCES)]
        revoked = await consentgate(
            "consents",
            "revoke",
            "--client",
            client_info.client_id,
            "--config",
            str(deployment.gates[1].config_path),
        )
        after = [await browser.get(opened) for _ in range(INSTANCES)]
    steps = deployment.browser_steps()
    assert [index for index, _ in steps[-2 * INSTANCES :]] == [0, 1, 2, 0, 1, 2]
    assert [page.status for page in before] == [302] * INSTANCES
    assert "revoked 1" in revoked
    assert [page.is_consent_page for page in after] == [True] * INSTANCES


async def test_an_idp_link_approved_in_another_browser_is_refused_by_another_gate(
    deployment: Deployment, attacker: Attacker
) -> None:
    """GHSA-rww4-4w9c-7733 across instances: the attacker's consent page comes from
    gate 0 and its approval from gate 1; the victim's callback, at gate 2, is refused."""
    await attacker.register(deployment.url)
    async with (
        Browser(deployment.url, fresh_connections=True) as own_browser,
        Browser(deployment.url, fresh_connections=True) as victim_browser,
    ):
        attacker_person = Person(own_browser, deployment.idp, "attacker")
        trip = await attacker_person.browse(attacker.link(deployment.url))
        idp_url = await attacker_person.approve(trip.last)
        victim_trip = await Person(victim_browser, deployment.idp, "victim").browse(
            idp_url, site="cross-site"
        )
    assert deployment.browser_steps() == [
        (0, "/authorize"),
        (1, "/_consentgate/consent"),
        (2, "/auth/callback"),
    ]
    assert victim_trip.hops[-1].url.startswith(f"{deployment.url}/auth/callback?")
    assert victim_trip.last.status == 403
    assert "This sign-in was not started in this browser" in victim_trip.last.text
    assert deployment.fastmcp.log.reached("/auth/callback") == []
    assert attacker.received == []
