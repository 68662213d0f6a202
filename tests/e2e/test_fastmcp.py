"""The gate in front of a real single-client OAuth proxy: FastMCP's OAuthProxy with its
consent left to the outside (``require_authorization_consent="external"``), a real
upstream IdP (oidc-provider-mock, registration required) and a real MCP client
(FastMCP's), all on loopback.

The control shows the confused deputy working against the bare proxy; each other
attack test runs the same attack through the gate and asserts both that it is
refused and that nothing of it reached the proxy (its request log) or the attacker.
"""

from __future__ import annotations

import json
import urllib.parse

import aiohttp
import pytest

from tests.e2e.peers import require_peers

require_peers()

# Everything below needs the extra.
from fastmcp import Client  # noqa: E402

from consentgate.web.appkeys import STORE  # noqa: E402
from tests.e2e.conftest import GatedStack  # noqa: E402
from tests.e2e.people import Attacker, BrowserOAuth, Person, whoami  # noqa: E402
from tests.e2e.stack import FastMcpServer, IdP  # noqa: E402
from tests.support import rawhttp  # noqa: E402
from tests.support.browsersim import Browser  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: What the gate answers a callback that the browser bringing it did not start.
REFUSED_CALLBACK = "This sign-in was not started in this browser"


def shown_destination(uri: str) -> str:
    """How the consent page shows a loopback redirect URI: its host in bold."""
    parts = urllib.parse.urlsplit(uri)
    return f"http://<strong>{parts.hostname}</strong>:{parts.port}{parts.path}"


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


# --- the legitimate flow ---------------------------------------------------------------


async def test_mcp_client_signs_in_through_the_consent_page_and_calls_a_tool(
    gated: GatedStack,
) -> None:
    async with Browser(gated.url) as browser:
        alice = Person(browser, gated.idp, "alice")
        auth = BrowserOAuth(alice, client_name="E2E Notes App")
        async with Client(gated.mcp_url, auth=auth) as client:
            added = await client.call_tool("add", {"a": 2, "b": 3})
            me = await client.call_tool("whoami", {})

    # The tool calls went over streamable HTTP through the gate, as alice.
    assert added.data == 5
    assert me.data == {"subject": "alice"}

    # The gate asked first, naming the client and where its result goes.
    (sign_in,) = alice.sign_ins
    page = sign_in.consent_page
    assert page is not None
    assert "E2E Notes App" in page.text
    assert shown_destination(auth.redirect_uri) in page.text
    # Then: the IdP's login form, the callback through the gate (the flow binding
    # matched), and the code handed to the client's redirect URI.
    hops = [(hop.method, hop.url.split("?")[0], hop.page.status) for hop in sign_in.trip.hops]
    assert hops == [
        ("GET", f"{gated.url}/authorize", 200),
        ("GET", gated.idp.authorize_url, 200),
        ("POST", gated.idp.authorize_url, 302),
        ("GET", f"{gated.url}/auth/callback", 302),
    ]
    assert sign_in.trip.stopped_before.startswith(auth.redirect_uri + "?")
    assert sign_in.result["iss"] == f"{gated.url}/"

    # Registration went through the gate, which learned the client from the answer.
    client_info = auth.context.client_info
    assert client_info is not None
    record = await gated.gate.app[STORE].get_client(client_info.client_id or "")
    assert record is not None
    assert auth.redirect_uri in record.redirect_uris

    # The proxy saw the whole flow, each step relayed by the gate: the 401, discovery,
    # registration, one authorization (after consent), the callback, the token, MCP.
    steps = [arrival.path for arrival in gated.fastmcp.log.arrivals]
    # First, the gate's own read of the metadata at start (its paths are the proxy's).
    assert steps[0] == "/.well-known/oauth-authorization-server"
    steps = steps[1:]
    assert [path for i, path in enumerate(steps) if i == 0 or steps[i - 1] != path] == [
        "/mcp",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/register",
        "/authorize",
        "/auth/callback",
        "/token",
        "/mcp",
    ]


async def test_a_second_sign_in_is_silent_when_remembered(gated: GatedStack) -> None:
    async with Browser(gated.url) as browser:
        alice = Person(browser, gated.idp, "alice")
        first = BrowserOAuth(alice, remember=True, client_name="E2E Notes App")
        async with Client(gated.mcp_url, auth=first) as client:
            await client.call_tool("add", {"a": 1, "b": 1})
        client_info = first.context.client_info
        assert client_info is not None
        # The same application, started again without its tokens: it must sign in anew.
        again = BrowserOAuth(
            alice, client_id=client_info.client_id, callback_port=first.redirect_port
        )
        async with Client(gated.mcp_url, auth=again) as client:
            me = await client.call_tool("whoami", {})

    assert me.data == {"subject": "alice"}
    asked, silent = alice.sign_ins
    assert asked.consent_page is not None
    assert silent.consent_page is None
    # The gate relayed the authorization request at once: a 302 to the IdP.
    opened = silent.trip.hops[0]
    assert opened.url.startswith(f"{gated.url}/authorize?")
    assert opened.page.status == 302
    assert opened.page.location.startswith(gated.idp.authorize_url + "?")
    assert "code" in silent.result
    assert len(gated.fastmcp.log.reached("/authorize")) == 2
    assert len(gated.fastmcp.log.reached("/register")) == 1


# --- the confused deputy -----------------------------------------------------------------


@pytest.mark.parametrize("route", ["registered-client", "proxys-own-client-id", "idp-link"])
async def test_without_the_gate_the_confused_deputy_attack_succeeds(
    bare: FastMcpServer, idp: IdP, attacker: Attacker, route: str
) -> None:
    """The control: against the bare proxy each attack below yields a token for the victim."""
    if route == "proxys-own-client-id":
        attacker.client_id = bare.upstream.client_id  # FastMCP accepts any redirect for it
    else:
        await attacker.register(bare.url)
    link = attacker.link(bare.url)
    if route == "idp-link":
        # GHSA-rww4-4w9c-7733: the attacker starts the flow in its own browser and
        # sends the victim the IdP URL the proxy redirected to.
        async with Browser(bare.url) as own_browser:
            started = await Person(own_browser, idp, "attacker").browse(
                link, stop_before=(idp.authorize_url,)
            )
        link = started.stopped_before

    async with Browser(bare.url) as browser:
        trip = await Person(browser, idp, "victim").browse(link, site="cross-site")

    assert trip.last.text == "All done, you can close this tab."
    (received,) = attacker.received
    token = await attacker.redeem(bare.url, received["code"])
    assert await whoami(bare.mcp_url, token) == "victim"


async def test_with_the_gate_the_confused_deputy_attack_is_refused(
    gated: GatedStack, attacker: Attacker
) -> None:
    async with Browser(gated.url) as browser:
        victim = Person(browser, gated.idp, "victim")
        # The victim uses the service, with an approval remembered for their own app.
        own_app = BrowserOAuth(victim, remember=True, client_name="Victim's App")
        async with Client(gated.mcp_url, auth=own_app) as client:
            await client.call_tool("whoami", {})
        relayed_before = len(gated.fastmcp.log.reached("/authorize"))

        await attacker.register(gated.url)
        trip = await victim.browse(attacker.link(gated.url), site="cross-site")

    # The victim's browser stopped at the gate's consent page for the attacker's client.
    assert [hop.url.split("?")[0] for hop in trip.hops] == [f"{gated.url}/authorize"]
    page = trip.last
    assert page.is_consent_page
    assert "Totally Legit MCP Client" in page.text
    assert "(name declared by the client)" in page.text
    assert shown_destination(attacker.listener_url) in page.text
    assert not trip.visited(gated.idp.url)
    # Nothing of the attack reached the proxy (no transaction), or the attacker.
    assert len(gated.fastmcp.log.reached("/authorize")) == relayed_before
    assert attacker.received == []


@pytest.mark.parametrize("destination", ["loopback", "https"])
async def test_the_attack_with_the_proxys_own_client_id_is_refused(
    gated: GatedStack, attacker: Attacker, destination: str
) -> None:
    """FastMCP accepts its upstream client_id with any https or loopback redirect URI."""
    attacker.client_id = gated.fastmcp.upstream.client_id
    redirect_uri = (
        attacker.listener_url if destination == "loopback" else "https://attacker.example/cb"
    )
    async with Browser(gated.url) as browser:
        trip = await Person(browser, gated.idp, "victim").browse(
            attacker.link(gated.url, redirect_uri=redirect_uri), site="cross-site"
        )

    assert [hop.url.split("?")[0] for hop in trip.hops] == [f"{gated.url}/authorize"]
    page = trip.last
    assert page.is_consent_page
    assert "Unverified client" in page.text
    host = urllib.parse.urlsplit(redirect_uri).hostname
    assert f"<strong>{host}</strong>" in page.text
    assert gated.fastmcp.log.reached("/authorize") == []
    assert attacker.received == []


CONSENT_SPELLINGS = [
    "/consent",
    "/Consent",
    "/CONSENT",
    "/consent/",
    "/%63onsent",
    "/%63%6F%6E%73%65%6E%74",
    "//consent",
    "/./consent",
    "/x/../consent",
    "/consent;x=1",
    "/consent%2F",
    "/%2563onsent",
]


async def test_the_attack_through_fastmcps_own_consent_page_is_refused(
    gated: GatedStack, attacker: Attacker
) -> None:
    """FastMCP still serves /consent in "external" mode; approving there redirects to the
    IdP. A live transaction id is needed: the attacker gets one the only way the gate
    allows, by approving its own client in its own browser."""
    await attacker.register(gated.url)
    async with Browser(gated.url) as own_browser:
        attacker_person = Person(own_browser, gated.idp, "attacker")
        trip = await attacker_person.browse(attacker.link(gated.url))
        idp_url = await attacker_person.approve(trip.last)
    txn_id = query_of(idp_url)["state"]

    for spelling in CONSENT_SPELLINGS:
        response = await rawhttp.request(gated.url, f"{spelling}?txn_id={txn_id}")
        # Two leading slashes name a host to a URL parser: refused before any rule.
        assert response.status == (400 if spelling.startswith("//") else 404), spelling
    answered = await rawhttp.request(
        gated.url,
        "/consent",
        method="POST",
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
        body=f"txn_id={txn_id}&action=approve".encode(),
    )
    assert answered.status == 404
    async with Browser(gated.url) as browser:
        victim_trip = await Person(browser, gated.idp, "victim").browse(
            f"{gated.url}/consent?txn_id={txn_id}", site="cross-site"
        )
    assert victim_trip.last.status == 404
    assert [a for a in gated.fastmcp.log.arrivals if "consent" in a.path.lower()] == []

    # The control: the proxy itself would have shown its page for that transaction.
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gated.fastmcp.url}/consent", params={"txn_id": txn_id}) as direct,
    ):
        assert direct.status == 200
        assert "approve" in (await direct.text()).lower()


async def test_an_idp_link_approved_in_another_browser_cannot_complete(
    gated: GatedStack, attacker: Attacker
) -> None:
    """GHSA-rww4-4w9c-7733: the attacker approves its client in its own browser, takes
    the IdP URL from the gate's 303 and sends it to the victim, who signs in."""
    await attacker.register(gated.url)
    async with Browser(gated.url) as own_browser, Browser(gated.url) as victim_browser:
        attacker_person = Person(own_browser, gated.idp, "attacker")
        trip = await attacker_person.browse(attacker.link(gated.url))
        idp_url = await attacker_person.approve(trip.last)
        assert idp_url.startswith(gated.idp.authorize_url + "?")

        victim_trip = await Person(victim_browser, gated.idp, "victim").browse(
            idp_url, site="cross-site"
        )

    hops = [(hop.method, hop.url.split("?")[0], hop.page.status) for hop in victim_trip.hops]
    assert hops == [
        ("GET", gated.idp.authorize_url, 200),
        ("POST", gated.idp.authorize_url, 302),
        ("GET", f"{gated.url}/auth/callback", 403),
    ]
    # The IdP did issue a code for the victim; the gate kept it from the proxy.
    assert "code" in query_of(victim_trip.hops[1].page.location)
    assert REFUSED_CALLBACK in victim_trip.last.text
    assert gated.fastmcp.log.reached("/auth/callback") == []
    assert attacker.received == []


# --- errors the gate redirects itself --------------------------------------------------------


async def test_a_deny_in_the_gate_names_fastmcps_issuer_byte_for_byte(
    gated: GatedStack, attacker: Attacker
) -> None:
    """RFC 9207 §2.4, MCP 2026-07-28: the client compares ``iss`` exactly with the
    ``issuer`` of the metadata it read through the gate (FastMCP's, with its trailing
    slash), and ignores an error that does not match."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gated.url}/.well-known/oauth-authorization-server") as response,
    ):
        assert response.status == 200
        advertised = json.loads(await response.read())["issuer"]

    await attacker.register(gated.url)
    async with Browser(gated.url) as browser:
        trip = await Person(browser, gated.idp, "alice").browse(attacker.link(gated.url))
        denied = await browser.answer(trip.last, "deny")

    assert denied.status == 303
    assert denied.location.startswith(attacker.listener_url + "?")
    raw = dict(
        urllib.parse.parse_qsl(urllib.parse.urlsplit(denied.location).query, strict_parsing=True)
    )
    assert raw["error"] == "access_denied"
    assert raw["iss"].encode() == advertised.encode()
    assert gated.fastmcp.log.reached("/authorize") == []
