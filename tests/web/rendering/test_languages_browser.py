"""The translated pages in Debian's chromium: an Arabic browser gets a right-to-left
page whose layout is mirrored (the buttons' order and the warning's bar flip sides),
a German one a German page; the screenshots docs/consent-page-ar.png and
docs/consent-page-de.png (with ``UPDATE_DOCS_SCREENSHOTS=1``)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, Page

from tests.conftest import FakeClock, Stack, StartStack
from tests.web.consent_flow.test_authorize import auth_params, register
from tests.web.consent_flow.test_browser import (  # noqa: F401 (chromium: a fixture)
    Console,
    chromium,
    save_screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def new_client_stack(start_stack: StartStack) -> tuple[Stack, str]:
    """A client registered two minutes ago: the page warns, so Deny comes first."""
    clock = FakeClock()
    stack = await start_stack(clock=clock, consent={"service_name": "Acme Notes"})
    client_id = await register(stack, client_name="Example Notes")
    clock.advance(125)
    return stack, client_id


async def open_consent(chromium: Browser, url: str, locale: str) -> tuple[Page, Console]:  # noqa: F811
    context = await chromium.new_context(viewport={"width": 1000, "height": 900}, locale=locale)
    page = await context.new_page()
    console = Console(page)
    await page.goto(url)
    await page.wait_for_selector("button.primary")
    return page, console


async def box_x(page: Page, selector: str) -> float:
    box = await page.locator(selector).first.bounding_box()
    assert box is not None
    return float(box["x"])


async def test_an_arabic_browser_gets_a_mirrored_right_to_left_page(
    chromium: Browser,  # noqa: F811
    start_stack: StartStack,
) -> None:
    stack, client_id = await new_client_stack(start_stack)
    url = f"{stack.url}/authorize?" + urlencode(auth_params(client_id))
    arabic, console = await open_consent(chromium, url, "ar-EG")
    english, _ = await open_consent(chromium, url, "en-US")
    assert await arabic.evaluate("document.documentElement.lang") == "ar"
    assert await arabic.evaluate("document.documentElement.dir") == "rtl"
    assert await arabic.evaluate("getComputedStyle(document.body).direction") == "rtl"
    assert await arabic.get_by_role("button", name="رفض").is_visible()
    # The first button (Deny, under the warning) is on the left in English and on the
    # right in Arabic; the second one on the other side.
    assert await box_x(english, "button.primary") < await box_x(english, "button.secondary")
    assert await box_x(arabic, "button.primary") > await box_x(arabic, "button.secondary")
    # The warning's bar is on the reading start: left in English, right in Arabic.
    bar = "getComputedStyle(document.querySelector('.notice'))"
    assert await english.evaluate(f"{bar}.borderLeftWidth") != "0px"
    assert await arabic.evaluate(f"{bar}.borderRightWidth") != "0px"
    assert await arabic.evaluate(f"{bar}.borderLeftWidth") == "0px"
    # The client's words keep their own direction inside the Arabic sentence.
    assert "Example Notes" in await arabic.inner_text("h1")
    await save_screenshot(arabic, "consent-page-ar.png")
    assert console.errors == []
    assert stack.proxy.reached("/authorize") == []


async def test_a_german_browser_gets_a_german_page(
    chromium: Browser,  # noqa: F811
    start_stack: StartStack,
) -> None:
    stack, client_id = await new_client_stack(start_stack)
    url = f"{stack.url}/authorize?" + urlencode(auth_params(client_id))
    page, console = await open_consent(chromium, url, "de-DE")
    assert await page.evaluate("document.documentElement.lang") == "de"
    assert await page.evaluate("document.documentElement.dir") == "ltr"
    main = await page.inner_text("main")
    assert "Wohin Ihr Anmeldeergebnis geht" in main
    assert "vor 2 Minuten" in main
    assert await page.get_by_role("button", name="Zulassen").is_visible()
    await save_screenshot(page, "consent-page-de.png")
    assert console.errors == []
