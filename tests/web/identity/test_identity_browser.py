"""The gate's own sign-in in a real browser (Debian's chromium, Playwright): the
Fetch Metadata chromium really sends decides, and the cookies it really keeps.

The test provider (tests/support/testidp.py) is reached as ``localhost``, another
site than the gate's ``127.0.0.1``: its answer comes back as the cross-site
navigation a real provider's is. A request typed in must still pass silently after
that round trip (its first arrival decides), and one arriving cross-site from
``attacker.localhost`` (mapped to loopback by chromium's resolver rule, never looked
up) must still be asked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, async_playwright

from consentgate.core.identity.person import person_subject
from consentgate.web.appkeys import STORE
from tests.conftest import StartStack, StartUpstream
from tests.support.fakeproxy import IDP
from tests.support.testidp import ALICE, TestIdp, identity_section
from tests.web.consent_flow.test_authorize import auth_params, register
from tests.web.consent_flow.test_browser import (
    CHROMIUM_ARGS,
    Console,
    chromium_path,
    save_screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: The fake proxy's IdP host and the attacker's, both to loopback: never looked up.
RESOLVER = "--host-resolver-rules=MAP attacker.localhost 127.0.0.1, MAP idp.example 127.0.0.1"


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium found: apt install chromium, or set CHROMIUM_PATH")
    args = [a for a in CHROMIUM_ARGS if not a.startswith("--host-resolver-rules")]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=path, headless=True, args=[*args, RESOLVER]
        )
        try:
            yield browser
        finally:
            await browser.close()


def watch_idp(context: BrowserContext) -> list[str]:
    """The requests the browser makes to the proxy's IdP (answered inside the browser
    when Playwright routes them; refused on loopback port 443 otherwise)."""
    seen: list[str] = []
    context.on("request", lambda r: seen.append(r.url) if r.url.startswith(IDP) else None)
    return seen


async def fulfil_idp(context: BrowserContext) -> list[str]:
    await context.route(
        lambda url: url.startswith(IDP),
        lambda route: route.fulfill(status=200, body="signed in upstream"),
    )
    return watch_idp(context)


async def until_requested(seen: list[str], page: object) -> None:
    """Wait (at most 10 s) until the browser asked for the proxy's IdP."""
    for _ in range(100):
        if seen:
            return
        await page.wait_for_timeout(100)  # type: ignore[attr-defined]


async def test_a_person_signs_in_approves_and_is_silent_in_another_browser_but_not_cross_site(
    chromium: Browser, start_stack: StartStack, start_upstream: StartUpstream
) -> None:
    idp = TestIdp(continue_page=True)
    # As "localhost", another site than the gate's 127.0.0.1: its answer comes back
    # as a cross-site navigation, as from a real provider.
    idp.url = (await start_upstream(idp.app())).replace("127.0.0.1", "localhost")
    stack = await start_stack(identity=identity_section(idp))
    client_id = await register(stack)
    target = f"{stack.url}/authorize?" + urlencode(auth_params(client_id))

    cross_site = target.replace("client-state-1", "x").replace("&", "&amp;")

    async def attacker_page(request: web.Request) -> web.Response:
        return web.Response(
            text=f'<!doctype html><a id="go" href="{cross_site}">sign in</a>',
            content_type="text/html",
        )

    attacker = web.Application()
    attacker.router.add_get("/", attacker_page)
    attacker_origin = (await start_upstream(attacker)).replace("127.0.0.1", "attacker.localhost")

    laptop = await chromium.new_context(viewport={"width": 1000, "height": 900})
    await fulfil_idp(laptop)
    page = await laptop.new_page()
    console = Console(page)
    await page.goto(target)  # typed in: Sec-Fetch-Site none; then the provider and back
    await page.click("#continue")
    await page.wait_for_selector("button.approve")
    signed_in = " ".join((await page.inner_text("form.signed-in")).split())
    await save_screenshot(page, "consent-page-signed-in.png")
    await page.get_by_label("Remember this decision").check()
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_url(lambda url: url.startswith(IDP))
    cookies = {c["name"]: c for c in await laptop.cookies()}
    await laptop.close()

    phone = await chromium.new_context()
    reached_idp = await fulfil_idp(phone)
    page = await phone.new_page()
    await page.goto(target.replace("client-state-1", "phone"))
    await page.click("#continue")  # back from the provider: cross-site, and still silent
    await until_requested(reached_idp, page)
    await phone.close()

    other = await chromium.new_context()
    reached = await fulfil_idp(other)
    page = await other.new_page()
    await page.goto(attacker_origin + "/")
    await page.click("#go")  # a cross-site arrival
    await page.click("#continue")
    await page.wait_for_selector("button.approve")
    await other.close()

    assert signed_in == "Signed in as alice@example.com · not you?"
    assert len(reached_idp) == 1 and reached == []
    session = cookies["cg_sess"]
    assert session["httpOnly"] and session["sameSite"] == "Lax" and session["path"] == "/"
    assert console.errors == []
    assert len(stack.proxy.reached("/authorize")) == 2
    (record,) = await stack.gate.app[STORE].list(subject=person_subject(idp.url, ALICE["sub"]))
    assert record.client_id == client_id
