"""The consent page in a real browser: Debian's chromium driven by Playwright.

Never a browser download: Playwright launches ``/usr/bin/chromium`` (or
``$CHROMIUM_PATH``). Without chromium these tests skip with the reason,
except where ``CI_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes a
missing browser a failure. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp import web
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from consentgate.core.trust.urls import BadURL, browser_host
from consentgate.demo import DemoStack, run_demo
from tests.conftest import StartStack, StartUpstream
from tests.support.documenthost import answer, issue, make_authority, running
from tests.support.fakeproxy import IDP
from tests.web.consent_flow.test_authorize import register
from tests.web.test_cimd import PATH as CIMD_PATH
from tests.web.test_cimd import clients_section, document_bytes, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
#: ``UPDATE_DOCS_SCREENSHOTS=1`` also writes the README's screenshots into docs/.
DOCS = Path(__file__).resolve().parents[3] / "docs"
JSON_TYPE = (("Content-Type", "application/json"),)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The demo's attacker host: chromium resolves *.localhost to loopback itself (RFC
    # 6761 §6.3); the rule makes sure no DNS query is ever sent for it.
    "--host-resolver-rules=MAP attacker.localhost 127.0.0.1",
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


async def sign_in_remembered(page: Page, demo: DemoStack, *, attack: bool = False) -> None:
    """Approve the demo client (or the attacker's) with "remember", through the IdP."""
    await open_consent(page, demo, attack=attack)
    await page.get_by_label("Remember this decision").check()
    await page.get_by_role("button", name="Allow").click()
    await page.wait_for_selector("#result, #user")
    if await page.locator("#user").count():
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_selector("#result")


async def save_screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        shutil.copyfile(ARTIFACTS / name, DOCS / name)


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
    # The attacker's host, not the demo client's 127.0.0.1: the headline gives it away.
    assert await page.inner_text("p.host") == "attacker.localhost"
    assert "an application on this computer" not in await page.inner_text("main")
    await assert_readable(page)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "consent-page.png"), full_page=True)
    assert console.errors == []
    await context.close()


async def test_under_a_warning_deny_is_the_filled_first_button(
    chromium: Browser, demo: DemoStack
) -> None:
    """The attacker's page (a new client, a foreign host over plain http) puts Deny
    first and filled, Allow second and outlined; after one real sign-in it also says
    where the person signs in next and what the IdP will be asked for."""
    context = await chromium.new_context(viewport={"width": 1000, "height": 900})
    page = await context.new_page()
    console = Console(page)
    await sign_in_remembered(page, demo)  # teaches the gate the demo IdP's host
    await open_consent(page, demo, attack=True)
    order = await page.eval_on_selector_all(
        ".actions button", "(buttons) => buttons.map((b) => b.textContent.trim())"
    )
    assert order == ["Deny", "Allow"]
    deny = page.get_by_role("button", name="Deny")
    allow = page.get_by_role("button", name="Allow")
    deny_box, allow_box = await deny.bounding_box(), await allow.bounding_box()
    assert deny_box is not None and allow_box is not None
    assert deny_box["x"] < allow_box["x"]  # side by side on a wide screen, Deny first
    filled = "(b) => getComputedStyle(b).backgroundColor"
    assert await deny.evaluate(filled) not in ("rgba(0, 0, 0, 0)", "transparent")
    assert await allow.evaluate(filled) in ("rgba(0, 0, 0, 0)", "transparent")
    main = await page.inner_text("main")
    # CLDR's words, floored to whole seconds under a minute (web/rendering/catalogs.py).
    assert re.search(r"registered \d+ seconds? ago", main.lower()), main
    idp_host = browser_host(demo.idp_url.split("//")[1].rsplit(":", 1)[0])
    assert f"Next, you sign in at {idp_host}" in main
    assert await page.locator("ul.idp-scopes li").all_inner_texts() == [
        "openid",
        "profile",
        "email",
    ]
    await assert_readable(page)
    await save_screenshot(page, "consent-page-warning.png")
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


@pytest.mark.parametrize(("key_presses", "outcome"), [(1, "access_denied"), (2, "Hello alice")])
async def test_approve_and_deny_work_with_the_keyboard_alone(
    chromium: Browser, demo: DemoStack, key_presses: int, outcome: str
) -> None:
    """The demo client is new and receives on this computer: warnings, so the keyboard
    reaches Deny first (the primary action), then Allow."""
    context = await chromium.new_context()
    page = await context.new_page()
    await open_consent(page, demo)
    await page.focus("#remember")
    for _ in range(key_presses):
        await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.textContent")
    assert focused == ("Deny" if key_presses == 1 else "Allow")
    await page.keyboard.press("Enter")
    if key_presses == 2:
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
    assert approve["y"] > deny["y"]  # stacked on a narrow screen, Deny first (a warning)
    await assert_readable(page)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "consent-page-phone-dark.png"), full_page=True)
    assert console.errors == []
    await context.close()


# --- the self-service approvals page ----------------------------------


async def test_revoking_on_the_approvals_page_makes_the_next_sign_in_ask_again(
    chromium: Browser, demo: DemoStack
) -> None:
    context = await chromium.new_context()
    page = await context.new_page()
    console = Console(page)
    await sign_in_remembered(page, demo)
    await page.goto(demo.gate_url + "/_consentgate/approvals")
    approvals = page.locator("li.approval")
    assert await approvals.count() == 1
    listed = await approvals.inner_text()
    assert "(name declared by the client)" in listed
    assert "127.0.0.1" in listed  # the demo client's redirect host
    await page.get_by_role("button", name="Revoke", exact=True).click()
    await page.wait_for_selector("p.empty")
    assert page.url == demo.gate_url + "/_consentgate/approvals"  # the 303 back to the page
    assert await page.locator("li.approval").count() == 0
    # Revoked: the next sign-in from that client shows the consent page again.
    await page.goto(demo.client_url + "/")
    await page.click("#sign-in")
    await page.wait_for_selector("button.approve")
    assert console.errors == []
    await context.close()


async def test_the_approvals_page_with_two_approvals_renders_cleanly_and_is_readable(
    chromium: Browser, demo: DemoStack
) -> None:
    context = await chromium.new_context(viewport={"width": 1000, "height": 900})
    page = await context.new_page()
    console = Console(page)
    await sign_in_remembered(page, demo)
    await sign_in_remembered(page, demo, attack=True)
    await page.goto(demo.gate_url + "/_consentgate/approvals")
    assert await page.locator("li.approval").count() == 2
    hosts = await page.locator("p.host").all_inner_texts()
    assert sorted(hosts) == ["127.0.0.1", "attacker.localhost"]  # the attacker's is not hidden
    assert await page.get_by_role("button", name="Revoke all").is_visible()
    await assert_readable(page)
    await save_screenshot(page, "approvals-page.png")
    assert console.errors == []
    await context.close()


async def test_the_consent_page_links_to_the_approvals_page(
    chromium: Browser, demo: DemoStack
) -> None:
    context = await chromium.new_context()
    page = await context.new_page()
    await open_consent(page, demo)
    await page.get_by_role("link", name="Manage your approvals").click()
    await page.wait_for_selector("p.empty")  # a browser that approved nothing yet
    assert page.url == demo.gate_url + "/_consentgate/approvals"
    await context.close()


# --- hardening #10.4: the destination host as the browser reads it -------------------------

CONFUSABLE_DESTINATIONS = [
    # (registered redirect URI, host the page must headline, a look-alike warning?)
    ("https://g\u043e\u043egle.com/cb", "xn--ggle-55da.com", True),  # Cyrillic o's
    ("https://claude.ai\u3002evil.com/cb", "claude.ai.evil.com", True),  # ideographic stop
    ("https://%65vil.com/cb", "evil.com", True),
    ("https://ev\u0131l.com/cb", "xn--evl-kua.com", True),  # dotless i
    ("https://\uff45\uff56\uff49\uff4c.com/cb", "evil.com", True),  # full-width letters
    ("https://Accounts.Example.com/cb", "accounts.example.com", False),
]


@pytest.mark.parametrize(("uri", "host", "warned"), CONFUSABLE_DESTINATIONS)
async def test_the_destination_host_is_shown_as_the_browser_reads_it(
    chromium: Browser, start_stack: StartStack, uri: str, host: str, warned: bool
) -> None:
    """The headline is the host chromium itself resolves the redirect URI to, in ASCII."""
    stack = await start_stack()
    client_id = await register(stack, redirect_uris=[uri], client_uri="https://google.com")
    page = await chromium.new_page()
    try:
        await page.goto(f"{stack.url}/authorize?" + urlencode(auth_params(client_id, uri)))
        shown = (await page.inner_text("p.host")).strip()
        chromium_reads = await page.evaluate("u => new URL(u).hostname", uri)
        notices = " ".join(await page.locator("p.notice").all_inner_texts())
    finally:
        await page.close()
    assert shown == host == chromium_reads
    assert ("look-alike or encoded" in notices) is warned
    assert stack.proxy.reached("/authorize") == []


async def test_a_custom_scheme_headlines_the_app_not_its_authority(
    chromium: Browser, start_stack: StartStack
) -> None:
    """``evilapp://accounts.google.com/cb`` is an app, not accounts.google.com; and the
    client's declared website google.com is flagged as another site."""
    stack = await start_stack()
    uri = "evilapp://accounts.google.com/cb"
    client_id = await register(stack, redirect_uris=[uri], client_uri="https://google.com")
    page = await chromium.new_page()
    try:
        await page.goto(f"{stack.url}/authorize?" + urlencode(auth_params(client_id, uri)))
        shown = (await page.inner_text("p.host")).strip()
        links = await page.inner_text("ul.links")
    finally:
        await page.close()
    assert shown == "an app on this device that handles evilapp:"
    assert "accounts.google.com" not in shown
    assert "a different site than the destination" in links


def _host_samples() -> list[str]:
    """Hosts built from the pieces that confuse parsers, deterministic."""
    pieces = ["a", "EX", "xn--", "-", ".", "\u3002", "\uff0e", "%65", "%2e", "0x7f", "1",
              "08", "256", "\u0131", "\u043e", "\u00df", "\u200b", "\uff41", "\u2488", "_",
              "%C4%B1", "%zz", "%", "%00", "[::1]", "\u0660"]  # fmt: skip
    rng = random.Random(10)
    samples = {"".join(rng.choice(pieces) for _ in range(rng.randint(1, 5))) for _ in range(600)}
    return sorted(samples)


async def test_browser_host_agrees_with_chromium_on_hundreds_of_confusing_hosts(
    chromium: Browser,
) -> None:
    """Differential test: for every sample, our reading equals chromium's ``new URL``,
    or both refuse it (where ours refuses, the request is refused, which is safe)."""
    samples = _host_samples()
    page = await chromium.new_page()
    try:
        theirs = await page.evaluate(
            "hosts => hosts.map(h => { try { return new URL('https://' + h + '/').hostname }"
            " catch (e) { return null } })",
            samples,
        )
    finally:
        await page.close()
    disagreements = []
    for sample, expected in zip(samples, theirs, strict=True):
        try:
            ours: str | None = browser_host(sample)
        except BadURL:
            ours = None
        if ours != expected and ours is not None:
            disagreements.append((sample, ours, expected))
    assert disagreements == [], disagreements[:10]


def auth_params(client_id: str, redirect_uri: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": "s1",
    }


# --- bidirectional controls in a client's words ---------------------------------------------

#: For each phrase found in the element, where each of its visible characters is drawn.
CHARACTER_LEFTS_SCRIPT = """
([selector, phrases]) => {
  const root = document.querySelector(selector);
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) nodes.push(node);
  return phrases.map((phrase) => {
    for (const node of nodes) {
      const at = node.data.indexOf(phrase);
      if (at < 0) continue;
      const lefts = [];
      for (let i = 0; i < phrase.length; i++) {
        if (phrase[i] === " ") continue;
        const range = document.createRange();
        range.setStart(node, at + i);
        range.setEnd(node, at + i + 1);
        const rect = range.getBoundingClientRect();
        lefts.push([Math.round(rect.top), rect.left]);
      }
      return lefts;
    }
    return null;
  });
}
"""

GATE_WORDS = ("(name declared by the client)", "wants to use Acme MCP as you")
OVERRIDE_NAME = "\u202eTrusted App"  # RIGHT-TO-LEFT OVERRIDE, never closed
HEBREW_NAME = "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd"  # "shalom olam"


async def drawn_left_to_right(page: Page, selector: str, phrases: tuple[str, ...]) -> list[bool]:
    """Whether each phrase's characters are drawn from left to right on the screen
    (compared within each line: a heading may wrap).

    ``inner_text`` is in the DOM's (logical) order whatever the display does, so the
    order on the screen is read from where chromium draws each character."""
    found = await page.evaluate(CHARACTER_LEFTS_SCRIPT, [selector, list(phrases)])
    assert None not in found, (selector, phrases, await page.inner_text(selector))
    return [
        all(a[1] < b[1] for a, b in itertools.pairwise(drawn) if a[0] == b[0]) for drawn in found
    ]


async def approve_remembered_in(page: Page, gate_url: str) -> None:
    """Submit the consent form shown in ``page`` with "remember", as the form would,
    but without following the 303 to the (unreachable, not loopback) IdP."""
    form: dict[str, str | float | bool] = {
        "pending": await page.input_value("input[name=pending]"),
        "sealed": await page.input_value("input[name=sealed]"),
        "csrf": await page.input_value("input[name=csrf]"),
        "decision": "approve",
        "remember": "yes",
    }
    response = await page.context.request.post(
        f"{gate_url}/_consentgate/consent",
        form=form,
        headers={"Origin": gate_url, "Sec-Fetch-Site": "same-origin", "Accept": "text/html"},
        max_redirects=0,
    )
    assert response.status == 303, await response.text()


async def test_an_override_in_a_client_name_cannot_reverse_the_gates_own_words(
    chromium: Browser, start_stack: StartStack
) -> None:
    """A name holding U+202E rendered "(name declared by the client)" and the rest of
    the headline backwards; the pages drop the control and isolate the name."""
    stack = await start_stack(consent={"service_name": "Acme MCP"})
    uri = "https://client.example/cb"
    client_id = await register(stack, redirect_uris=[uri], client_name=OVERRIDE_NAME)
    context = await chromium.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    console = Console(page)
    try:
        await page.goto(f"{stack.url}/authorize?" + urlencode(auth_params(client_id, uri)))
        headline = " ".join((await page.inner_text("h1")).split())
        consent_order = await drawn_left_to_right(page, "h1", GATE_WORDS)
        await approve_remembered_in(page, stack.url)
        await page.goto(f"{stack.url}/_consentgate/approvals")
        listed = " ".join((await page.inner_text("#approval-1-name")).split())
        approvals_order = await drawn_left_to_right(page, "#approval-1-name", GATE_WORDS[:1])
    finally:
        await context.close()
    assert consent_order == [True, True]
    assert approvals_order == [True]
    assert headline == (
        "\u201cTrusted App\u201d (name declared by the client) wants to use Acme MCP as you"
    )
    assert listed == "\u201cTrusted App\u201d (name declared by the client)"
    assert console.errors == []


async def test_a_right_to_left_name_still_shows_and_keeps_the_gates_words_in_order(
    chromium: Browser, start_stack: StartStack
) -> None:
    stack = await start_stack(consent={"service_name": "Acme MCP"})
    uri = "https://client.example/cb"
    client_id = await register(stack, redirect_uris=[uri], client_name=HEBREW_NAME)
    context = await chromium.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(f"{stack.url}/authorize?" + urlencode(auth_params(client_id, uri)))
        headline = " ".join((await page.inner_text("h1")).split())
        gate_order = await drawn_left_to_right(page, "h1", GATE_WORDS)
        name_order = await drawn_left_to_right(page, "h1 bdi", (HEBREW_NAME.split(maxsplit=1)[0],))
        await approve_remembered_in(page, stack.url)
        await page.goto(f"{stack.url}/_consentgate/approvals")
        listed = " ".join((await page.inner_text("#approval-1-name")).split())
    finally:
        await context.close()
    assert headline == f"\u201c{HEBREW_NAME}\u201d {GATE_WORDS[0]} {GATE_WORDS[1]}"
    assert gate_order == [True, True]
    assert name_order == [False]  # Hebrew letters are still drawn right to left
    assert listed == f"\u201c{HEBREW_NAME}\u201d {GATE_WORDS[0]}"


# --- a client named by a URL (Client ID Metadata Documents) ----------------------------------


async def test_the_consent_page_of_a_url_client_shows_its_verified_domain(
    chromium: Browser, start_stack: StartStack, tmp_path: Path
) -> None:
    """What a person sees for a client that never registered: the domain its document
    came from over HTTPS, its declared name, the destination, and (its document lists
    only loopback URIs) the spec's impersonation warning. docs/consent-page-cimd.png."""
    authority = make_authority(tmp_path, "test-ca")
    async with running("127.0.0.1", issue(authority, tmp_path)) as host:
        client_id = host.url(CIMD_PATH)
        host.routes[CIMD_PATH] = answer(
            200, document_bytes(client_id, client_uri=host.url("/")), JSON_TYPE
        )
        stack = await start_stack(
            clients=clients_section(authority), consent={"service_name": "Acme MCP"}
        )
        context = await chromium.new_context(viewport={"width": 1000, "height": 900})
        page = await context.new_page()
        console = Console(page)
        await page.goto(f"{stack.url}/authorize?" + urlencode(sign_in(client_id, 53682)))
        await page.wait_for_selector("button.approve")
        verified = await page.inner_text("p.verified")
        main = await page.inner_text("main")
        await assert_readable(page)
        await save_screenshot(page, "consent-page-cimd.png")
        await context.close()
    assert verified == "Verified domain: 127.0.0.1"
    assert "“Example Notes” (name declared by the client)" in main
    assert "http://127.0.0.1:53682/callback" in main
    assert "cannot prevent localhost impersonation" in main
    assert "First seen by this service " in main  # its first use: the new-client warning
    assert "This application was first used with Acme MCP " in main
    assert "Unverified client" not in main
    assert console.errors == []
    assert stack.proxy.reached("/authorize") == []


async def test_the_approvals_page_shows_a_url_clients_verified_domain(
    chromium: Browser, start_stack: StartStack, tmp_path: Path
) -> None:
    """An approval of a client that never registered is shown by the domain its
    document came from, as the consent page showed it, not as an unverified client."""
    authority = make_authority(tmp_path, "test-ca")
    async with running("127.0.0.1", issue(authority, tmp_path)) as host:
        client_id = host.url(CIMD_PATH)
        host.routes[CIMD_PATH] = answer(200, document_bytes(client_id), JSON_TYPE)
        stack = await start_stack(clients=clients_section(authority))
        context = await chromium.new_context(viewport={"width": 1000, "height": 900})
        page = await context.new_page()
        # The approval relays to the fake IdP's address: answered inside the browser,
        # never looked up (nothing leaves loopback).
        await context.route(
            lambda url: url.startswith(IDP),
            lambda route: route.fulfill(status=200, body="signed in"),
        )
        console = Console(page)
        await page.goto(f"{stack.url}/authorize?" + urlencode(sign_in(client_id, 53682)))
        await page.get_by_label("Remember this decision").check()
        await page.get_by_role("button", name="Allow").click()
        await page.wait_for_url(lambda url: url.startswith(IDP))
        await page.goto(f"{stack.url}/_consentgate/approvals")
        heading = " ".join((await page.inner_text("#approval-1-name")).split())
        verified = await page.inner_text("li.approval p.verified")
        listed = await page.inner_text("li.approval")
        await assert_readable(page)
        await save_screenshot(page, "approvals-page-cimd.png")
        await context.close()
    assert heading == "An application from 127.0.0.1"
    assert verified == "Verified domain: 127.0.0.1"
    assert "Unverified client" not in listed
    assert client_id in listed
    assert console.errors == []
    assert host.accepted == 1
