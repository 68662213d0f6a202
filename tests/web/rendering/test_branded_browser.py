"""A themed gate in Debian's chromium: the operator's logo and accent colour show,
the strict CSP holds (no violation, no inline style), and the screenshots of the
branded consent and error pages (docs/consent-page-branded.png,
docs/error-page-branded.png with ``UPDATE_DOCS_SCREENSHOTS=1``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser

from tests.conftest import StartStack
from tests.web.consent_flow.test_authorize import auth_params, register
from tests.web.consent_flow.test_browser import (  # noqa: F401 (chromium: a fixture)
    Console,
    chromium,
    contrast,
    parse_rgb,
    save_screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ACCENT = "#6d28d9"
LOGO = """<svg xmlns="http://www.w3.org/2000/svg" width="168" height="40" viewBox="0 0 168 40">
<rect width="40" height="40" rx="9" fill="#6d28d9"/>
<path d="M11 27 L20 11 L29 27 Z" fill="#ffffff"/>
<rect x="50" y="13" width="108" height="6" rx="3" fill="#6d28d9"/>
<rect x="50" y="24" width="72" height="5" rx="2.5" fill="#a78bfa"/>
</svg>
"""


def theme(tmp_path: Path) -> dict[str, str]:
    directory = tmp_path / "theme"
    directory.mkdir()
    (directory / "logo.svg").write_text(LOGO)
    return {
        "logo_file": str(directory / "logo.svg"),
        "accent_color": ACCENT,
        "support_url": "https://help.example/ticket",
    }


async def test_the_consent_page_wears_the_operators_logo_and_accent_under_the_strict_csp(
    chromium: Browser,  # noqa: F811
    start_stack: StartStack,
    tmp_path: Path,
) -> None:
    stack = await start_stack(ui=theme(tmp_path), consent={"service_name": "Acme Notes"})
    client_id = await register(stack, client_name="Example Notes")
    context = await chromium.new_context(viewport={"width": 1000, "height": 900})
    page = await context.new_page()
    console = Console(page)
    await page.goto(f"{stack.url}/authorize?" + urlencode(auth_params(client_id)))
    # The accent colours the primary action: Allow, or Deny under a warning (a client
    # registered a moment ago, as here, is one).
    await page.wait_for_selector("button.primary")
    logo_width = await page.eval_on_selector("img.brand-logo", "img => img.naturalWidth")
    background = await page.eval_on_selector(
        "button.primary", "b => getComputedStyle(b).backgroundColor"
    )
    text = await page.eval_on_selector("button.primary", "b => getComputedStyle(b).color")
    await save_screenshot(page, "consent-page-branded.png")
    assert logo_width == 168
    assert parse_rgb(background) == (0x6D, 0x28, 0xD9)
    assert contrast(parse_rgb(text), parse_rgb(background)) >= 4.5
    assert console.errors == []  # no CSP violation: the colour came as a stylesheet
    assert stack.proxy.reached("/authorize") == []
    await context.close()


async def test_an_error_page_wears_the_theme_and_links_support(
    chromium: Browser,  # noqa: F811
    start_stack: StartStack,
    tmp_path: Path,
) -> None:
    stack = await start_stack(ui=theme(tmp_path), consent={"service_name": "Acme Notes"})
    context = await chromium.new_context(viewport={"width": 1000, "height": 700})
    page = await context.new_page()
    console = Console(page)
    response = await page.goto(f"{stack.url}/authorize?client_id=c")
    assert response is not None and response.status == 400
    link = page.get_by_role("link", name="contact support")
    assert await link.get_attribute("href") == "https://help.example/ticket"
    assert "Go back to the application" in await page.inner_text("main")
    await save_screenshot(page, "error-page-branded.png")
    # The page's own 400 is reported; nothing else (no CSP violation, no missing asset).
    assert [e for e in console.errors if "status of 400" not in e] == []
    await context.close()
