"""The consent page in a real browser: Debian's chromium driven by Playwright.

Never a browser download: Playwright launches ``/usr/bin/chromium`` (or
``$CHROMIUM_PATH``). Without chromium these tests skip with the reason,
except where ``CI_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes a
missing browser a failure. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from consentgate.demo import DemoStack, run_demo
from tests.conftest import StartUpstream

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    if path is None:
        if os.environ.get("CI_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required here (CI_REQUIRE_BROWSER=1) but not found")
        pytest.skip("no chromium found: apt install chromium, or set CHROMIUM_PATH")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[DemoStack]:
    async with run_demo(0, tmp_path) as stack:
        yield stack


class Console:
    """Console errors, page errors and CSP violations seen by a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(message.text)


async def open_consent(page: Page, demo: DemoStack, *, attack: bool = False) -> None:
    await page.goto(demo.client_url + "/")
    await page.click("#attack" if attack else "#sign-in")
    await page.wait_for_selector("button.approve")


def relative_luminance(rgb: tuple[int, int, int]) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    light, dark = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def parse_rgb(text: str) -> tuple[int, int, int]:
    numbers = text[text.index("(") + 1 : text.index(")")].replace(",", " ").split()
    return int(float(numbers[0])), int(float(numbers[1])), int(float(numbers[2]))


CONTRAST_SCRIPT = """
(selectors) => selectors.map((selector) => {
  const element = document.querySelector(selector);
  if (!element) return null;
  let background = "rgba(0, 0, 0, 0)";
  for (let node = element; node; node = node.parentElement) {
    const color = getComputedStyle(node).backgroundColor;
    if (color !== "rgba(0, 0, 0, 0)" && color !== "transparent") { background = color; break; }
  }
  return [selector, getComputedStyle(element).color, background];
})
"""


async def assert_readable(page: Page) -> None:
    """WCAG AA: at least 4.5:1 for the page's text."""
    selectors = ["h1", "p.host", ".uri", ".notice", "button.approve", "button.deny", ".scopes li"]
    for entry in await page.evaluate(CONTRAST_SCRIPT, selectors):
        if entry is None:
            continue
        selector, color, background = entry
        ratio = contrast(parse_rgb(color), parse_rgb(background))
        assert ratio >= 4.5, f"{selector}: contrast {ratio:.2f} ({color} on {background})"


async def test_consent_page_renders_cleanly_and_is_readable(
    chromium: Browser, demo: DemoStack
) -> None:
    context = await chromium.new_context(viewport={"width": 1000, "height": 900})
    page = await context.new_page()
    console = Console(page)
    await open_consent(page, demo, attack=True)
    assert await page.get_by_role("button", name="Allow").is_visible()
    assert await page.get_by_role("button", name="Deny").is_visible()
    assert await page.get_by_label("Remember this decision").count() == 1
    assert "an application on this computer" in await page.inner_text("main")
    assert await page.inner_text("p.host") == "127.0.0.1"
    await assert_readable(page)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "consent-page.png"), full_page=True)
    assert console.errors == []
    await context.close()


async def test_approve_by_clicking_completes_the_sign_in(
    chromium: Browser, demo: DemoStack
) -> None:
    context = await chromium.new_context()
    page = await context.new_page()
    console = Console(page)
    await open_consent(page, demo)
    await page.get_by_label("Remember this decision").check()
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_selector("text=Demo identity provider")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_selector("#result")
    assert "Hello alice, from the demo MCP server." in await page.inner_text("#result")
    # Remembered: the next sign-in from the client passes without a consent page.
    await page.goto(demo.client_url + "/")
    await page.click("#sign-in")
    await page.wait_for_selector("#result")
    assert "Hello alice" in await page.inner_text("#result")
    assert console.errors == []
    await context.close()


@pytest.mark.parametrize(("key_presses", "outcome"), [(1, "Hello alice"), (2, "access_denied")])
async def test_approve_and_deny_work_with_the_keyboard_alone(
    chromium: Browser, demo: DemoStack, key_presses: int, outcome: str
) -> None:
    context = await chromium.new_context()
    page = await context.new_page()
    await open_consent(page, demo)
    await page.focus("#remember")
    for _ in range(key_presses):
        await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.textContent")
    assert focused == ("Allow" if key_presses == 1 else "Deny")
    await page.keyboard.press("Enter")
    if key_presses == 1:
        await page.wait_for_selector("text=Demo identity provider")
        await page.focus("#user")
        await page.keyboard.press("Enter")
    await page.wait_for_selector("#result")
    assert outcome in await page.inner_text("#result")
    await context.close()


async def test_approve_works_with_javascript_disabled(chromium: Browser, demo: DemoStack) -> None:
    context = await chromium.new_context(java_script_enabled=False)
    page = await context.new_page()
    await open_consent(page, demo)
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_selector("text=Demo identity provider")
    await context.close()


async def test_the_consent_page_does_not_display_in_a_frame_of_another_origin(
    chromium: Browser, demo: DemoStack, start_upstream: StartUpstream
) -> None:
    consent_url: list[str] = []

    async def framing_page(request: web.Request) -> web.Response:
        return web.Response(
            text=f'<!doctype html><title>evil</title><iframe id="f" src="{consent_url[0]}" '
            'width="800" height="600"></iframe>',
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/", framing_page)
    evil = await start_upstream(app)
    context = await chromium.new_context()
    page = await context.new_page()
    await open_consent(page, demo)
    consent_url.append(page.url)
    framed = await context.new_page()
    console = Console(framed)
    await framed.goto(evil + "/")
    await framed.wait_for_timeout(500)  # let the frame load (or be refused)
    frame = next(f for f in framed.frames if f != framed.main_frame)
    content = ""
    try:
        content = await frame.content()
    except PlaywrightError:
        content = ""
    assert 'value="approve"' not in content  # the frame shows the browser's error page
    assert await framed.locator("iframe").count() == 1
    assert any("frame-ancestors" in error or "Refused to" in error for error in console.errors)
    await context.close()


async def test_phone_viewport_in_dark_mode_renders_well(chromium: Browser, demo: DemoStack) -> None:
    context = await chromium.new_context(
        viewport={"width": 375, "height": 740}, color_scheme="dark", device_scale_factor=2
    )
    page = await context.new_page()
    console = Console(page)
    await open_consent(page, demo, attack=True)
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    background = parse_rgb(await page.evaluate("getComputedStyle(document.body).backgroundColor"))
    assert relative_luminance(background) < 0.05  # follows the system's dark mode
    approve = await page.get_by_role("button", name="Allow").bounding_box()
    deny = await page.get_by_role("button", name="Deny").bounding_box()
    assert approve is not None and deny is not None
    assert approve["height"] >= 44 and approve["width"] > 300  # a thumb-sized target
    assert deny["y"] > approve["y"]  # stacked on a narrow screen
    await assert_readable(page)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "consent-page-phone-dark.png"), full_page=True)
    assert console.errors == []
    await context.close()
