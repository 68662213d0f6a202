"""A client named by a URL (Client ID Metadata Documents) signs in through the gate to
FastMCP's OAuthProxy, with both of them fetching and checking its document.

The peers, all on loopback: an HTTPS document host on 127.0.0.1 whose certificate
comes from a throwaway CA made with ``cryptography`` (tests/support/documenthost.py),
the real IdP (oidc-provider-mock), FastMCP's OAuthProxy with CIMD on (its default,
``enable_cimd=True``), and two real MCP clients in CIMD mode: FastMCP's ``Client``
with ``OAuth(client_metadata_url=...)`` and the MCP Python SDK's own
``OAuthClientProvider(client_metadata_url=...)``. Neither registers: the server's
metadata says ``client_id_metadata_document_supported`` and the client_id is the URL.

The gate trusts the CA through ``[clients] fetch_ca_file`` and may reach the host
through ``fetch_allow_networks = ["127.0.0.1/32"]``. FastMCP, which runs in this
test process (uvicorn in the module's event loop), gets the same two relaxations
here and nowhere else, for this module's lifetime only:

* **its address check**: FastMCP's fetch (``fastmcp.server.auth.ssrf``) refuses
  every address that is not globally routable through the module-level
  ``is_ip_allowed``, which ``validate_url`` looks up at each call and which has no
  configuration (fastmcp 4.2's only switch, ``FASTMCP_SSRF_TRUST_PROXY``, hands the
  fetch to an outbound proxy instead). The module fixture monkeypatches it with a
  wrapper that allows the document host's one address, 127.0.0.1, and asks the
  original about every other;
* **its trust**: FastMCP's fetch uses httpx2 with ``verify=True``, whose default
  context reads ``SSL_CERT_FILE``; the fixture sets it to the throwaway CA *after*
  the gate has started, so the gate's TLS context (built once at start) trusts the
  CA through ``fetch_ca_file`` alone.

The stack is started once for the module (the e2e suite is slow enough); each test
uses its own browser, so a remembered approval of one test never serves another.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from tests.e2e.peers import require_peers

require_peers()

# Everything below needs the extra.
import fastmcp.server.auth.ssrf as fastmcp_ssrf  # noqa: E402
from fastmcp import Client  # noqa: E402
from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402

from consentgate.audit.events import AuditEvent, AuditTrail  # noqa: E402
from consentgate.core.clock import system_clock  # noqa: E402
from consentgate.metrics.collectors import Metrics  # noqa: E402
from consentgate.serving.application import create_app  # noqa: E402
from consentgate.serving.server import start  # noqa: E402
from consentgate.web.appkeys import METRICS  # noqa: E402
from tests.conftest import bound_socket, make_config  # noqa: E402
from tests.e2e.people import (  # noqa: E402
    BrowserOAuth,
    Person,
    SdkOAuth,
    attacker_listening,
)
from tests.e2e.stack import HOST, FastMcpServer, IdP, run_fastmcp  # noqa: E402
from tests.support.browsersim import Browser  # noqa: E402
from tests.support.documenthost import (  # noqa: E402
    DocumentHost,
    answer,
    issue,
    make_authority,
    running,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

PATH = "/oauth/e2e-client.json"
CLIENT_NAME = "E2E Document Notes"
#: A loopback redirect URI without a port (RFC 8252 §7.3): each sign-in picks its own.
LISTED = f"http://{HOST}/callback"
#: The gate's own fetches name it; FastMCP's are httpx2's.
GATE_AGENT = "consentgate/"


def relax_fastmcp_address_check(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    """Let FastMCP's SSRF check pass ``address`` (and only it) for this module."""
    original = fastmcp_ssrf.is_ip_allowed

    def allowed(ip: str) -> bool:
        return ip == address or original(ip)

    monkeypatch.setattr(fastmcp_ssrf, "is_ip_allowed", allowed)


@dataclass
class CimdStack:
    gate_url: str
    client_id: str
    host: DocumentHost
    fastmcp: FastMcpServer
    idp: IdP
    events: list[AuditEvent]
    metrics: Metrics = field(repr=False)

    @property
    def mcp_url(self) -> str:
        return f"{self.gate_url}/mcp"

    def fetches(self, *, by_gate: bool) -> int:
        agents = [r.headers.get("user-agent", "") for r in self.host.requests]
        return sum(agent.startswith(GATE_AGENT) == by_gate for agent in agents)

    def relayed(self) -> int:
        return len(self.fastmcp.log.reached("/authorize"))

    def refusals(self, reason: str) -> float:
        exposition = self.metrics.exposition().decode()
        line = f'consentgate_refusals_total{{reason="{reason}"}} '
        for row in exposition.splitlines():
            if row.startswith(line):
                return float(row.removeprefix(line))
        return 0.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cimd(idp: IdP, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CimdStack]:
    directory: Path = tmp_path_factory.mktemp("cimd-e2e")
    authority = make_authority(directory, "e2e-documents-ca")
    async with contextlib.AsyncExitStack() as stack:
        host = await stack.enter_async_context(running(HOST, issue(authority, directory)))
        client_id = host.url(PATH)
        document = {
            "client_id": client_id,
            "client_name": CLIENT_NAME,
            "redirect_uris": [LISTED],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        host.routes[PATH] = answer(200, json.dumps(document).encode())

        fastmcp_sock = bound_socket(HOST)
        fastmcp_url = f"http://{HOST}:{fastmcp_sock.getsockname()[1]}"
        gate_sock = bound_socket(HOST)
        gate_url = f"http://{HOST}:{gate_sock.getsockname()[1]}"
        config = make_config(
            directory,
            fastmcp_url,
            gate_url,
            upstream={"blocked_paths": ["/consent"]},
            clients={
                "fetch_ca_file": str(authority.cert_file),
                "fetch_allow_networks": ["127.0.0.1/32"],
                "fetch_timeout": "3s",
            },
        )
        events: list[AuditEvent] = []
        app = create_app(config, clock=system_clock, audit=AuditTrail([events.append]))
        runner = await start(config, app, sock=gate_sock)
        stack.push_async_callback(runner.cleanup)

        upstream = await idp.register_client(f"{gate_url}/auth/callback")
        patches = stack.enter_context(pytest.MonkeyPatch.context())
        relax_fastmcp_address_check(patches, HOST)
        patches.setenv("SSL_CERT_FILE", str(authority.cert_file))
        fastmcp = await stack.enter_async_context(
            run_fastmcp(fastmcp_sock, idp=idp, upstream=upstream, public_url=gate_url)
        )
        yield CimdStack(gate_url, client_id, host, fastmcp, idp, events, app[METRICS])


def shown_destination(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    return f"http://<strong>{parts.hostname}</strong>:{parts.port}{parts.path}"


# --- FastMCP's client in CIMD mode ------------------------------------------------------


async def test_a_url_client_signs_in_through_the_consent_page_and_fastmcp_checks_it_too(
    cimd: CimdStack,
) -> None:
    relayed_before = cimd.relayed()
    registrations_before = len(cimd.fastmcp.log.reached("/register"))
    async with Browser(cimd.gate_url) as browser:
        alice = Person(browser, cimd.idp, "alice")
        auth = BrowserOAuth(alice, client_metadata_url=cimd.client_id)
        async with Client(cimd.mcp_url, auth=auth) as client:
            added = await client.call_tool("add", {"a": 2, "b": 3})
            me = await client.call_tool("whoami", {})

    assert added.data == 5
    assert me.data == {"subject": "alice"}
    # The client named itself by the URL and registered nothing.
    assert auth.context.client_info is not None
    assert auth.context.client_info.client_id == cimd.client_id
    assert len(cimd.fastmcp.log.reached("/register")) == registrations_before

    # The gate asked first, showing the domain it fetched the document from.
    (sign_in,) = alice.sign_ins
    page = sign_in.consent_page
    assert page is not None
    assert f"Verified domain: <strong><bdi>{HOST}</bdi></strong>" in page.text
    assert f"&ldquo;<bdi>{CLIENT_NAME}</bdi>&rdquo;" in page.text
    assert shown_destination(auth.redirect_uri) in page.text
    assert "Unverified client" not in page.text
    # Then the IdP, the callback through the gate's binding check, the code.
    hops = [(hop.method, hop.url.split("?")[0], hop.page.status) for hop in sign_in.trip.hops]
    assert hops == [
        ("GET", f"{cimd.gate_url}/authorize", 200),
        ("GET", cimd.idp.authorize_url, 200),
        ("POST", cimd.idp.authorize_url, 302),
        ("GET", f"{cimd.gate_url}/auth/callback", 302),
    ]
    assert sign_in.trip.stopped_before.startswith(auth.redirect_uri + "?")

    # FastMCP got one authorization, and fetched the document itself (the gate's
    # fetch does not stand in for its own check; each keeps it for an hour, so the
    # host saw at least one fetch from each in this module).
    assert cimd.relayed() == relayed_before + 1
    (relayed,) = cimd.fastmcp.log.reached("/authorize")[relayed_before:]
    assert ("client_id", cimd.client_id) in urllib.parse.parse_qsl(relayed.query)
    assert cimd.fetches(by_gate=True) >= 1
    assert cimd.fetches(by_gate=False) >= 1
    assert cimd.fastmcp.log.reached("/token")


# --- the MCP Python SDK in CIMD mode -------------------------------------------------------


async def sdk_call_add(auth: SdkOAuth, mcp_url: str) -> int:
    """Connect with the SDK's own transport and session, and call ``add``."""
    async with (
        create_mcp_http_client(auth=auth.provider) as http,
        streamable_http_client(mcp_url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("add", {"a": 20, "b": 22})
    assert result.structured_content is not None, result
    total: int = result.structured_content["result"]
    return total


async def test_the_sdk_client_signs_in_by_url_and_again_from_another_port_silently(
    cimd: CimdStack,
) -> None:
    relayed_before = cimd.relayed()
    ports = [bound_socket(HOST) for _ in range(2)]  # held, so nobody else takes them
    first_port, second_port = (sock.getsockname()[1] for sock in ports)
    try:
        async with Browser(cimd.gate_url) as browser:
            bob = Person(browser, cimd.idp, "bob")
            first = SdkOAuth(
                bob,
                cimd.mcp_url,
                redirect_port=first_port,
                client_metadata_url=cimd.client_id,
                remember=True,
            )
            assert await sdk_call_add(first, cimd.mcp_url) == 42
            # The application started again, on another port, without its tokens.
            again = SdkOAuth(
                bob, cimd.mcp_url, redirect_port=second_port, client_metadata_url=cimd.client_id
            )
            assert await sdk_call_add(again, cimd.mcp_url) == 42
    finally:
        for sock in ports:
            sock.close()

    assert first.storage.client_info is not None
    assert first.storage.client_info.client_id == cimd.client_id
    asked, silent = bob.sign_ins
    assert asked.consent_page is not None
    assert f"Verified domain: <strong><bdi>{HOST}</bdi></strong>" in asked.consent_page.text
    # The second sign-in: the gate relayed it at once, a 302 to the IdP.
    assert silent.consent_page is None
    opened = silent.trip.hops[0]
    assert opened.url.startswith(f"{cimd.gate_url}/authorize?")
    assert ("redirect_uri", again.redirect_uri) in urllib.parse.parse_qsl(
        urllib.parse.urlsplit(opened.url).query
    )
    assert opened.page.status == 302
    assert opened.page.location.startswith(cimd.idp.authorize_url + "?")
    assert silent.trip.stopped_before.startswith(again.redirect_uri + "?")
    assert cimd.relayed() == relayed_before + 2
    remembered = [e for e in cimd.events if e.event == "consent_silent"]
    assert remembered and remembered[-1].fields["reason"] == "remembered"


# --- an attacker on the same client_id ---------------------------------------------------------


async def test_an_attackers_redirect_uri_on_the_url_client_id_is_refused_before_any_prompt(
    cimd: CimdStack,
) -> None:
    """The victim has approved the real application and asked the gate to remember it;
    the attacker sends them a link with the same client_id and its own redirect URI (a
    page it runs on loopback, then an https one). The gate refuses on the document,
    before any prompt, and FastMCP's /authorize never sees the request."""
    async with Browser(cimd.gate_url) as browser, attacker_listening() as attacker:
        carol = Person(browser, cimd.idp, "carol")
        own_app = BrowserOAuth(carol, client_metadata_url=cimd.client_id, remember=True)
        async with Client(cimd.mcp_url, auth=own_app) as client:
            await client.call_tool("whoami", {})
        relayed_before = cimd.relayed()
        refused_before = cimd.refusals("redirect_uri_not_listed")
        fetches_before = len(cimd.host.requests)

        attacker.client_id = cimd.client_id
        trips = [
            await carol.browse(attacker.link(cimd.gate_url, redirect_uri=uri), site=site)
            for uri in (attacker.listener_url, "https://attacker.example/callback")
            for site in ("cross-site", "none")
        ]

    for trip in trips:
        assert [hop.url.split("?")[0] for hop in trip.hops] == [f"{cimd.gate_url}/authorize"]
        page = trip.last
        assert page.status == 400 and page.location == ""
        assert not page.is_consent_page
        assert "This sign-in could not start" in page.text  # the reason is audited below
        assert not trip.visited(cimd.idp.url)
    assert cimd.relayed() == relayed_before
    assert attacker.received == []
    assert cimd.refusals("redirect_uri_not_listed") == refused_before + len(trips)
    refused = [e for e in cimd.events if e.event == "client_refused"][-len(trips) :]
    assert {(e.fields["reason"], e.fields["at"]) for e in refused} == {
        ("redirect_uri_not_listed", "authorize")
    }
    # The cached document answered: the host was not asked again.
    assert len(cimd.host.requests) == fetches_before
