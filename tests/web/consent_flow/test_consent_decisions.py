"""The consent page helps the person decide: how new the client is, Deny first under a
warning, where they sign in next and what that sign-in asks for, and a step-up that
shows what is new. Against the fake single-client proxy, through a real gate."""

from __future__ import annotations

import re
import urllib.parse

import pytest
from aiohttp import web

from tests.conftest import FakeClock, Stack, StartGate, StartStack, StartUpstream
from tests.support.browsersim import Browser
from tests.support.fakeproxy import FakeProxy
from tests.web.consent_flow.test_authorize import approve_new, auth_params, register

BUTTONS = re.compile(r'<button type="submit" name="decision" value="(\w+)" class="([^"]+)"')
DRIVE = "https://www.googleapis.com/auth/drive.readonly"


@pytest.fixture
async def stack(start_stack: StartStack) -> Stack:
    return await start_stack()


def buttons(text: str) -> list[tuple[str, str]]:
    """The consent form's buttons in document order, with their classes."""
    return BUTTONS.findall(text)


def listed(text: str, css_class: str) -> list[str]:
    """The scopes of the list with ``css_class`` (empty when there is no such list)."""
    found = re.search(rf'<ul class="scopes {css_class}">(.*?)</ul>', text, re.S)
    return re.findall(r"<bdi>(.*?)</bdi>", found.group(1)) if found else []


async def test_a_client_registered_minutes_ago_shows_its_age_and_deny_comes_first(
    start_stack: StartStack,
) -> None:
    clock = FakeClock()
    stack = await start_stack(clock=clock, consent={"service_name": "Acme MCP"})
    client_id = await register(stack)
    clock.advance(4 * 60 + 10)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
    assert page.is_consent_page
    assert "Registered 4 minutes ago" in page.text
    assert "registered with Acme MCP 4 minutes ago" in page.text
    assert buttons(page.text) == [("deny", "deny primary"), ("approve", "approve secondary")]


async def test_without_a_warning_allow_stays_the_first_and_primary_action(
    start_stack: StartStack,
) -> None:
    clock = FakeClock()
    stack = await start_stack(clock=clock)
    client_id = await register(stack)
    clock.advance(2 * 86400)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
    assert "Registered 2 days ago" in page.text
    assert 'class="notice' not in page.text
    assert buttons(page.text) == [("approve", "approve primary"), ("deny", "deny secondary")]


@pytest.mark.parametrize(
    "redirect",
    ["http://127.0.0.1:5555/cb", "http://intranet.example/cb", "https://g\u043e\u043egle.com/cb"],
)
async def test_every_destination_warning_makes_deny_the_primary_action(
    start_stack: StartStack, redirect: str
) -> None:
    clock = FakeClock()
    stack = await start_stack(clock=clock)
    client_id = await register(stack, redirect_uris=[redirect])
    clock.advance(30 * 86400)  # not new: only the destination warns
    async with Browser(stack.url) as browser:
        page = await browser.authorize({**auth_params(client_id), "redirect_uri": redirect})
    assert 'class="notice' in page.text
    assert buttons(page.text)[0] == ("deny", "deny primary")


async def test_the_idp_host_and_its_scopes_are_learned_from_the_relayed_hand_off(
    stack: Stack,
) -> None:
    stack.proxy.idp_scope = f"openid email {DRIVE}"
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        first = await browser.authorize(auth_params(client_id))
        assert "Next, you sign in at" not in first.text  # nothing relayed yet: no guess
        assert listed(first.text, "idp-scopes") == []
        relayed = await browser.answer(first, "approve")
        assert relayed.location.startswith("https://idp.example/")
        second = await browser.authorize(auth_params(client_id))
    assert "Next, you sign in at <bdi>idp.example</bdi>" in second.text
    assert "<bdi>idp.example</bdi> will also be asked for:" in second.text
    assert listed(second.text, "idp-scopes") == ["openid", "email", DRIVE]


async def test_configured_idp_host_and_scopes_are_shown_before_any_sign_in(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(
        consent={"idp_host": "Login.Example.org", "upstream_scopes": ["openid", "repo"]}
    )
    stack.proxy.idp_scope = "openid learned-but-configured-wins"
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        first = await browser.authorize(auth_params(client_id))
        await browser.answer(first, "approve")
        second = await browser.authorize(auth_params(client_id))
    for page in (first, second):
        assert "Next, you sign in at <bdi>login.example.org</bdi>" in page.text
        assert listed(page.text, "idp-scopes") == ["openid", "repo"]


class BackToTheClient(FakeProxy):
    """An upstream that answers an authorization with a redirect to the client's own
    redirect URI, shaped like a hand-off (the client chose that URI)."""

    async def _authorize(self, request: web.Request) -> web.Response:
        query = {
            "redirect_uri": f"{self.public_url}/auth/callback",
            "state": request.query.get("state", ""),
            "response_type": "code",
            "scope": "client-chosen",
        }
        raise web.HTTPFound(request.query["redirect_uri"] + "?" + urllib.parse.urlencode(query))


async def test_a_redirect_to_the_clients_own_site_is_never_taken_for_the_idp(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    proxy = BackToTheClient()
    gate = await start_gate(await start_upstream(proxy.app()))
    proxy.public_url = gate.url
    stack = Stack(proxy, gate)
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        first = await browser.authorize(auth_params(client_id))
        relayed = await browser.answer(first, "approve")
        assert relayed.location.startswith("https://client.example/callback?")
        second = await browser.authorize(auth_params(client_id))
    assert "Next, you sign in at" not in second.text
    assert "client-chosen" not in second.text


async def test_a_step_up_asks_only_for_the_new_scope_and_then_passes_silently(
    stack: Stack,
) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        await approve_new(browser, auth_params(client_id, scope="openid"), remember=True)
        union = auth_params(client_id, scope="openid profile")
        asked = await browser.authorize(union)
        assert asked.is_consent_page  # never silent for a new scope
        assert "It asks for more than you approved before" in asked.text
        assert listed(asked.text, "new-scopes") == ["profile"]
        assert listed(asked.text, "approved-scopes") == ["openid"]
        approved = await browser.answer(asked, "approve", remember=True)
        assert approved.status == 303
        again = await browser.authorize(union)
        assert again.status == 302 and not again.is_consent_page
        smaller = await browser.authorize(auth_params(client_id, scope="openid"))
        assert smaller.status == 302


async def test_a_step_up_for_another_resource_is_not_shown_as_already_approved(
    stack: Stack,
) -> None:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        await approve_new(browser, auth_params(client_id, scope="openid"), remember=True)
        other = auth_params(client_id, scope="openid profile", resource="https://other.example/")
        page = await browser.authorize(other)
    assert page.is_consent_page
    assert "It asks for more than you approved before" not in page.text
    assert listed(page.text, "approved-scopes") == []
