"""The split deployment end to end: Debian's nginx with the blocks
``consentgate nginx-config`` prints, in front of the gate and FastMCP's OAuthProxy,
the real IdP and a real MCP client. The sign-in goes through the gate; the MCP
traffic after it goes from nginx straight to FastMCP (its log shows no gate
``X-Request-Id`` on those requests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.peers import require_peers

require_peers()

from fastmcp import Client  # noqa: E402

from consentgate.cli.nginxconf import nginx_config  # noqa: E402
from tests.conftest import StartGate, bound_socket  # noqa: E402
from tests.e2e.people import BrowserOAuth, Person  # noqa: E402
from tests.e2e.stack import IdP, run_fastmcp  # noqa: E402
from tests.support.browsersim import Browser  # noqa: E402
from tests.support.nginxfront import free_port, nginx_front  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOST = "127.0.0.1"


async def test_a_sign_in_through_nginx_and_the_gate_then_tool_calls_go_direct(
    idp: IdP, start_gate: StartGate, tmp_path: Path
) -> None:
    sock = bound_socket(HOST)
    fastmcp_url = f"http://{HOST}:{sock.getsockname()[1]}"
    port = free_port()
    front_url = f"http://{HOST}:{port}"
    gate = await start_gate(
        fastmcp_url,
        public_url=front_url,
        server={"trusted_proxies": ["127.0.0.1/32"]},
        upstream={"blocked_paths": ["/consent"], "direct_paths": ["/mcp"]},
    )
    blocks = nginx_config(
        gate.config, listen=f"{HOST}:{port}", gate=gate.url.removeprefix("http://")
    )
    upstream = await idp.register_client(f"{front_url}/auth/callback")
    async with (
        nginx_front(tmp_path / "nginx", blocks, port) as url,
        run_fastmcp(sock, idp=idp, upstream=upstream, public_url=front_url) as fastmcp,
        Browser(url) as browser,
    ):
        alice = Person(browser, idp, "alice")
        auth = BrowserOAuth(alice, client_name="E2E Notes App")
        async with Client(f"{url}/mcp", auth=auth) as client:
            added = await client.call_tool("add", {"a": 2, "b": 3})
            me = await client.call_tool("whoami", {})

    assert added.data == 5
    assert me.data == {"subject": "alice"}
    (sign_in,) = alice.sign_ins
    assert sign_in.consent_page is not None  # the gate asked, behind nginx
    log = fastmcp.log.arrivals
    # The sign-in steps came through the gate; the MCP traffic straight from nginx.
    for path in ("/register", "/authorize", "/auth/callback"):
        hits = [a for a in log if a.path == path]
        assert hits and all(a.via_gate for a in hits), (path, hits)
    mcp = [a for a in log if a.path == "/mcp"]
    assert len(mcp) >= 3 and not any(a.via_gate for a in mcp)
