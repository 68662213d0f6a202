"""Fixtures for the end-to-end tests: the real IdP, FastMCP's OAuthProxy, and the gate.

Nothing here is a fake. The IdP (oidc-provider-mock) runs as a subprocess for the
whole session; each test gets its own FastMCP (uvicorn in the test's event loop)
and, for the gated stack, its own gate started by the suite's ``start_gate``.

Order matters, because each URL is configuration of another peer: FastMCP's
socket is bound first (the gate's upstream), then the gate starts (its URL is
FastMCP's ``base_url`` and, + ``/auth/callback``, the redirect URI of the IdP
client), then the IdP client is registered, then FastMCP starts.

The peers come with the optional ``e2e`` extra (``pip install -e '.[e2e]'``). This
file must load without them: the test modules skip when they are missing, and a
conftest that failed or skipped on import would break the whole run instead. So
the helpers that import fastmcp are imported inside the fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from tests.conftest import RunningGate, StartGate, bound_socket

if TYPE_CHECKING:
    from tests.e2e.people import Attacker
    from tests.e2e.stack import FastMcpServer, IdP

HOST = "127.0.0.1"


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdP]:
    """The upstream IdP, one process for the whole session; its log is kept in tmp."""
    from tests.e2e.stack import run_idp

    with run_idp(tmp_path_factory.mktemp("idp") / "idp.log") as running:
        yield running


@dataclass
class GatedStack:
    """FastMCP's OAuthProxy with the gate in front: the way it is meant to be deployed."""

    gate: RunningGate
    fastmcp: FastMcpServer
    idp: IdP

    @property
    def url(self) -> str:
        return self.gate.url

    @property
    def mcp_url(self) -> str:
        return f"{self.gate.url}/mcp"


@pytest.fixture
async def gated(idp: IdP, start_gate: StartGate) -> AsyncIterator[GatedStack]:
    """IdP -> FastMCP OAuthProxy (consent "external") -> the gate, all on loopback."""
    from tests.e2e.stack import run_fastmcp

    sock = bound_socket(HOST)
    fastmcp_url = f"http://{HOST}:{sock.getsockname()[1]}"
    gate = await start_gate(fastmcp_url, upstream={"blocked_paths": ["/consent"]})
    upstream = await idp.register_client(f"{gate.url}/auth/callback")
    async with run_fastmcp(sock, idp=idp, upstream=upstream, public_url=gate.url) as fastmcp:
        yield GatedStack(gate, fastmcp, idp)


@pytest.fixture
async def bare(idp: IdP) -> AsyncIterator[FastMcpServer]:
    """The same proxy with nothing in front of it: its base_url is its own URL."""
    from tests.e2e.stack import run_fastmcp

    sock = bound_socket(HOST)
    url = f"http://{HOST}:{sock.getsockname()[1]}"
    upstream = await idp.register_client(f"{url}/auth/callback")
    async with run_fastmcp(sock, idp=idp, upstream=upstream, public_url=url) as fastmcp:
        yield fastmcp


@pytest.fixture
async def attacker() -> AsyncIterator[Attacker]:
    """The attacker, with its redirect page listening on loopback."""
    from tests.e2e.people import attacker_listening

    async with attacker_listening() as running:
        yield running
