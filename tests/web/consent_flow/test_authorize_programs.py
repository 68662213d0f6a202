"""A program fetching the authorization URL itself, the way mcp-remote 0.15 does before
it opens the browser: ``fetch(url, {redirect: "manual", headers: {Accept:
"application/json"}})`` in Node, whose fetch adds ``Sec-Fetch-Mode: cors`` and the
headers below. mcp-remote calls its cached registration stale when the answer is
400 or 401 with the JSON error ``invalid_client`` or ``unauthorized_client``; any
other answer is "fine" and it opens the browser.

Nothing of such a request reaches the upstream, whatever the client.
"""

from __future__ import annotations

import json
import urllib.parse

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from consentgate.audit.events import AuditEvent, AuditTrail
from tests.conftest import Stack, StartStack
from tests.support.browsersim import Browser
from tests.web.consent_flow.test_authorize import auth_params, register

#: What mcp-remote 0.15.1's preflight sends (read from a local Node fetch to a socket).
MCP_REMOTE_HEADERS = {
    "Accept": "application/json",
    "Accept-Language": "*",
    "Sec-Fetch-Mode": "cors",
    "User-Agent": "node",
    "Accept-Encoding": "gzip, deflate",
}
#: A program without fetch metadata (Python, curl -H): only Accept says it.
PLAIN_JSON_HEADERS = {"Accept": "application/json"}


def stale_for_mcp_remote(status: int, body: bytes) -> bool:
    """mcp-remote's ``preflightCachedDynamicClientRegistration`` decision."""
    if status not in (400, 401):
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("error") in (
        "invalid_client",
        "unauthorized_client",
    )


async def ask(
    stack: Stack, params: dict[str, str], headers: dict[str, str]
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    url = f"{stack.url}/authorize?{urllib.parse.urlencode(params)}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers, allow_redirects=False) as response,
    ):
        return response.status, response.headers, await response.read()


@pytest.fixture
async def recorded(start_stack: StartStack) -> tuple[Stack, list[AuditEvent]]:
    events: list[AuditEvent] = []
    stack = await start_stack(audit=AuditTrail([events.append]))
    return stack, events


@pytest.mark.parametrize("headers", [MCP_REMOTE_HEADERS, PLAIN_JSON_HEADERS])
async def test_a_program_asking_for_an_unknown_client_learns_its_registration_is_stale(
    recorded: tuple[Stack, list[AuditEvent]], headers: dict[str, str]
) -> None:
    stack, events = recorded
    status, answer_headers, body = await ask(stack, auth_params("client-forgotten"), headers)

    assert status == 400
    assert "Location" not in answer_headers  # RFC 6749 §4.1.2.1: never a redirect
    assert "Set-Cookie" not in answer_headers
    assert answer_headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"] == "invalid_client"
    assert stale_for_mcp_remote(status, body)
    assert stack.proxy.reached("/authorize") == []
    (event,) = [e for e in events if e.event == "authorize_not_navigation"]
    assert event.fields["answer"] == "invalid_client"
    assert event.fields["client_kind"] == "unknown"
    assert event.fields["client_id"] == "client-forgotten"
    assert [e for e in events if e.event == "consent_asked"] == []


@pytest.mark.parametrize("headers", [MCP_REMOTE_HEADERS, PLAIN_JSON_HEADERS])
async def test_a_program_asking_for_a_known_client_is_told_a_person_must_open_the_url(
    recorded: tuple[Stack, list[AuditEvent]], headers: dict[str, str]
) -> None:
    stack, events = recorded
    client_id = await register(stack)
    status, answer_headers, body = await ask(stack, auth_params(client_id), headers)

    assert status == 400
    assert "Location" not in answer_headers and "Set-Cookie" not in answer_headers
    assert answer_headers["Cache-Control"] == "no-store"
    assert json.loads(body)["error"] == "interaction_required"
    assert not stale_for_mcp_remote(status, body)  # so mcp-remote opens the browser
    assert stack.proxy.reached("/authorize") == []
    (event,) = [e for e in events if e.event == "authorize_not_navigation"]
    assert (event.fields["answer"], event.fields["client_kind"]) == (
        "interaction_required",
        "registered",
    )
    assert [e for e in events if e.event == "consent_asked"] == []

    # The browser mcp-remote then opens gets the consent page as before.
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
    assert page.is_consent_page


async def test_a_remembered_approval_relays_nothing_for_a_program(
    recorded: tuple[Stack, list[AuditEvent]],
) -> None:
    """Even approved: a program does not follow the IdP hand-off, so an upstream
    transaction would be started for nobody."""
    stack, _ = recorded
    client_id = await register(stack, client_name="Approved")
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
        await browser.answer(page, "approve", remember=True)
        relayed = len(stack.proxy.reached("/authorize"))
        cookies = "; ".join(f"{c.key}={c.value}" for c in browser.session.cookie_jar)
    headers = {**MCP_REMOTE_HEADERS, "Sec-Fetch-Site": "same-origin", "Cookie": cookies}
    status, _, body = await ask(stack, auth_params(client_id), headers)

    assert (status, json.loads(body)["error"]) == (400, "interaction_required")
    assert len(stack.proxy.reached("/authorize")) == relayed


async def test_a_program_with_an_unregistered_redirect_uri_gets_invalid_request_in_json(
    recorded: tuple[Stack, list[AuditEvent]],
) -> None:
    stack, _ = recorded
    client_id = await register(stack)
    params = {**auth_params(client_id), "redirect_uri": "https://elsewhere.example/cb"}
    status, answer_headers, body = await ask(stack, params, MCP_REMOTE_HEADERS)

    assert (status, json.loads(body)["error"]) == (400, "invalid_request")
    assert "Location" not in answer_headers
    assert stack.proxy.reached("/authorize") == []


async def test_a_malformed_request_from_a_program_is_answered_in_json(
    recorded: tuple[Stack, list[AuditEvent]],
) -> None:
    stack, _ = recorded
    params = {**auth_params("client-x"), "redirect_uri": "not a url"}
    status, _, body = await ask(stack, params, {**MCP_REMOTE_HEADERS, "Accept": "*/*"})

    assert status == 400
    assert json.loads(body)["error"] == "invalid_request"
    assert stack.proxy.reached("/authorize") == []


async def test_a_url_client_its_document_does_not_vouch_for_is_invalid_client_to_a_program(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(clients={"blocked_domains": ["cimd.example"]})
    params = auth_params("https://app.cimd.example/client.json")
    status, _, body = await ask(stack, params, MCP_REMOTE_HEADERS)

    assert status == 400
    assert stale_for_mcp_remote(status, body)
    assert stack.proxy.reached("/authorize") == []


async def test_a_browser_navigation_still_gets_the_consent_page(
    recorded: tuple[Stack, list[AuditEvent]],
) -> None:
    """A real browser's headers (Chromium's navigation), JSON in Accept or not."""
    stack, _ = recorded
    client_id = await register(stack)
    navigation = {
        "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
        "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Dest": "document",
        "Sec-Fetch-Site": "none",
    }
    status, answer_headers, body = await ask(stack, auth_params(client_id), navigation)
    assert status == 200
    assert answer_headers["Content-Type"].startswith("text/html")
    assert b'name="decision"' in body
