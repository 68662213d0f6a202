"""The split deployment: a real nginx with the blocks that
``consentgate nginx-config`` prints, in front of the gate and the upstream.

The data plane (``[upstream] direct_paths = ["/mcp"]``) goes straight to the
upstream; everything else, and every odd spelling of anything, goes to the gate.
An upstream request that came through the gate carries its ``X-Request-Id``; one
that came directly from nginx does not: that is how each arrival is told apart.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from consentgate.cli.nginxconf import nginx_config
from tests.conftest import Stack, StartStack
from tests.support import rawhttp
from tests.support.nginxfront import free_port, nginx_front
from tests.web.consent_flow.test_authorize import auth_params, register

pytestmark = pytest.mark.slow  # Debian's nginx in front of the gate

#: Aimed at the authorization and callback endpoints, dressed as the data plane.
CRAFTED = [
    "/mcp/../authorize",
    "/mcp/%2e%2e/authorize",
    "/mcp/%2E%2E/authorize",
    "/mcp/..%2fauthorize",
    "/mcp/..%2Fauthorize",
    "/mcp%2f..%2fauthorize",
    "/mcp/.%2e/authorize",
    "/mcp/%252e%252e/authorize",
    "//mcp/../authorize",
    "/mcp//../authorize",
    "/mcp/..;/authorize",
    "/mcp;/../authorize",
    "/mcp/..\\authorize",
    "/mcp\\..\\authorize",
    "/mcp/..%5cauthorize",
    "/mcp/./../authorize",
    "/MCP/../authorize",
    "/mcp./../authorize",
    "/mcp/../AUTHORIZE",
    "/mcp/..%00/authorize",
    "/mcp/../authorize/",
    "/authorize",
    "/mcp/../auth/callback",
    "/mcp/%2e%2e/auth/callback",
    "/mcp/..%2fauth%2fcallback",
    "/mcp/..;/auth/callback",
    "/MCP/../auth/callback",
    "/auth/callback",
]


@pytest.fixture
async def split(start_stack: StartStack, tmp_path: Path) -> AsyncIterator[tuple[Stack, str]]:
    stack = await start_stack(
        server={"trusted_proxies": ["127.0.0.1/32"]}, upstream={"direct_paths": ["/mcp"]}
    )
    port = free_port()
    gate = stack.url.removeprefix("http://")
    blocks = nginx_config(stack.gate.config, listen=f"127.0.0.1:{port}", gate=gate)
    async with nginx_front(tmp_path / "nginx", blocks, port) as url:
        stack.proxy.arrivals.clear()
        yield stack, url


def came_through_the_gate(stack: Stack) -> list[bool]:
    return ["X-Request-Id" in arrival.headers for arrival in stack.proxy.arrivals]


async def test_the_data_plane_goes_direct_and_an_odd_spelling_of_it_through_the_gate(
    split: tuple[Stack, str],
) -> None:
    stack, url = split
    for target in ("/mcp", "/mcp/tools/call?session=1"):
        await rawhttp.request(url, target)
    assert [a.raw_path for a in stack.proxy.arrivals] == ["/mcp", "/mcp/tools/call?session=1"]
    assert came_through_the_gate(stack) == [False, False]  # nginx speed: no gate on the way
    stack.proxy.arrivals.clear()
    await rawhttp.request(url, "/mcp/%74ools")  # an escape: the gate relays it instead
    await rawhttp.request(url, "/other")  # not on the allow-list
    assert came_through_the_gate(stack) == [True, True]


async def test_the_sign_in_endpoints_are_the_gates(split: tuple[Stack, str]) -> None:
    stack, url = split
    client_id = await register(stack)
    query = urllib.parse.urlencode(auth_params(client_id))
    page = await rawhttp.request(url, f"/authorize?{query}", headers=[("Accept", "text/html")])
    assert page.status == 200 and b'value="approve"' in page.body  # the gate asks first
    assert stack.proxy.reached("/authorize") == []


@pytest.mark.parametrize("path", CRAFTED)
async def test_no_crafted_path_reaches_an_endpoint_around_the_gate(
    split: tuple[Stack, str], path: str
) -> None:
    stack, url = split
    client_id = await register(stack)
    stack.proxy.arrivals.clear()
    query = (
        urllib.parse.urlencode(auth_params(client_id))
        if "authorize" in path.lower()
        else "code=stolen-code&state=client-state-1"
    )
    response = await rawhttp.request(url, f"{path}?{query}", headers=[("Accept", "text/html")])
    # Either nginx refused it itself, or the gate answered: never the upstream directly.
    assert all(came_through_the_gate(stack)), [a.raw_path for a in stack.proxy.arrivals]
    assert stack.proxy.reached("/authorize") == []
    assert stack.proxy.reached("/auth/callback") == []
    assert response.status in {200, 302, 400, 403, 404}, response.status
