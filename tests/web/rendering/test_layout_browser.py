"""The pages in Debian's chromium as a person uses them: on a 375 px phone (no
sideways scrolling, targets a thumb can hit, a long host that wraps), with the
keyboard alone (a sensible order, a focus indicator that shows, no trap), in the
dark scheme (text and the primary button readable) and mirrored (``dir="rtl"``).

Target size: buttons are at least 44 x 44 CSS px (WCAG 2.2 SC 2.5.5, level AAA: the
consent decision is the one tap that matters), every other control at least 24 x 24
(SC 2.5.8, AA); links inside a sentence are the SC's inline exception.
Focus: the indicator is a 3 px outline at least 3:1 against the card (SC 2.4.7 and
SC 1.4.11, non-text contrast), and differs visibly from the unfocused control.

The sample pages are the ones ``consentgate pages`` writes, served with the gate's
headers (``test_accessibility_browser.serve_pages``); the flows that need a gate
(a long registered host, revoking with the keyboard) use one.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, Page, ViewportSize

from consentgate.demo import DemoStack
from tests.conftest import StartStack, StartUpstream
from tests.web.consent_flow.test_authorize import auth_params, register
from tests.web.consent_flow.test_browser import (  # noqa: F401 (chromium, demo: fixtures)
    Console,
    chromium,
    contrast,
    demo,
    parse_rgb,
    sign_in_remembered,
)
from tests.web.rendering.test_accessibility_browser import PageSet, Scheme, serve_pages
from tests.web.rendering.test_branded_browser import ACCENT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE: ViewportSize = {"width": 375, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}

#: An element as a short readable name: its tag and its text (or id).
NAME = """(e) => e.tagName.toLowerCase() + ":" +
  ((e.textContent || "").trim() || e.id || e.getAttribute("name") || "")"""
#: The focused element's name, or null when focus is not on the page's controls.
FOCUSED = f"""() => {{
  const e = document.activeElement;
  return !e || e === document.body ? null : ({NAME})(e);
}}"""
FOCUSABLE = "a[href], button, input:not([type=hidden]), select, textarea, [tabindex]"
#: How the focused element is drawn: outline and shadow, the focus indicator's parts.
RING = """(e) => {
  const s = getComputedStyle(e);
  return [s.outlineStyle, s.outlineWidth, s.outlineColor, s.boxShadow].join("|");
}"""
#: The first opaque background behind an element: what its focus ring is seen against.
BACKDROP = """(e) => {
  for (let n = e.parentElement; n; n = n.parentElement) {
    const c = getComputedStyle(n).backgroundColor;
    if (c !== "rgba(0, 0, 0, 0)" && c !== "transparent") return c;
  }
  return "rgb(255, 255, 255)";
}"""
SIDEWAYS = "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"


async def from_the_top(page: Page) -> None:
    """Put the keyboard's starting point at the top of the page: a click on its
    corner (a blur alone leaves it at the blurred control, as browsers do)."""
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    await page.mouse.click(1, 1)


async def tab_through(page: Page, limit: int = 40) -> list[str]:
    """Press Tab from the top until focus leaves the page: the names, in order."""
    await from_the_top(page)
    order: list[str] = []
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(FOCUSED)
        if focused is None:
            return order
        order.append(focused)
    raise AssertionError(f"focus never left the page after {limit} presses: {order}")


@pytest.fixture
async def sample(start_upstream: StartUpstream, tmp_path: Path) -> PageSet:
    return await serve_pages(tmp_path, start_upstream, accent=None)


#: WCAG 2.2 SC 1.4.12: the text spacing a reader may impose without losing content.
TEXT_SPACING = """() => {
  const style = document.createElement("style");
  style.textContent = "* { line-height: 1.5 !important; letter-spacing: 0.12em !important;" +
    " word-spacing: 0.16em !important; } p { margin-bottom: 2em !important; }";
  document.head.appendChild(style);
}"""


@pytest.mark.parametrize(
    ("width", "direction", "spacing"),
    [(375, "ltr", False), (375, "rtl", False), (320, "ltr", True), (320, "rtl", True)],
)
async def test_no_page_scrolls_sideways_on_a_phone(
    chromium: Browser,  # noqa: F811
    sample: PageSet,
    width: int,
    direction: str,
    spacing: bool,
) -> None:
    """375 px, a small phone; 320 px, where WCAG 2.2 SC 1.4.10 (reflow) asks for no
    sideways scrolling, here with the reader's text spacing of SC 1.4.12 imposed
    (``bypass_csp``: the spacing is an injected stylesheet, as a reader's extension's)."""
    context = await chromium.new_context(viewport={"width": width, "height": 740}, bypass_csp=True)
    page = await context.new_page()
    overflowing = {}
    for name in sample.names:
        await page.goto(f"{sample.url}/{name}")
        await page.evaluate(f"document.documentElement.dir = '{direction}'")
        if spacing:
            await page.evaluate(TEXT_SPACING)
            spaced = await page.evaluate("getComputedStyle(document.body).wordSpacing")
            assert spaced != "0px", "the text spacing did not apply"
        scroll_width = await page.evaluate("document.scrollingElement.scrollWidth")
        if scroll_width > width:
            overflowing[name] = scroll_width
    assert overflowing == {}
    await context.close()


@pytest.mark.parametrize("name", ["consent.html", "consent-warnings.html", "approvals.html"])
async def test_buttons_are_44_px_targets_and_other_controls_24_px_on_a_phone(
    chromium: Browser,  # noqa: F811
    sample: PageSet,
    name: str,
) -> None:
    context = await chromium.new_context(viewport=PHONE)
    page = await context.new_page()
    await page.goto(f"{sample.url}/{name}")
    small = []
    for control in await page.query_selector_all("button, input:not([type=hidden])"):
        box = await control.bounding_box()
        assert box is not None
        tag = await control.evaluate("(e) => e.tagName.toLowerCase()")
        least = 44 if tag == "button" else 24
        if box["width"] < least or box["height"] < least:
            small.append((await control.evaluate(NAME), box))
    assert small == []
    await context.close()


async def test_a_long_destination_host_wraps_on_a_phone_instead_of_overflowing(
    chromium: Browser,  # noqa: F811
    start_stack: StartStack,
) -> None:
    host = ".".join(["sign-in-results-for-a-rather-long-application-name"] * 3) + ".example"
    uri = f"https://{host}/oauth/callback/with/a/long/path/segment-that-does-not-break"
    stack = await start_stack()
    client_id = await register(stack, redirect_uris=[uri], client_name="N" * 120)
    context = await chromium.new_context(viewport=PHONE)
    page = await context.new_page()
    console = Console(page)
    await page.goto(f"{stack.url}/authorize?" + urlencode(auth_params(client_id, redirect_uri=uri)))
    assert (await page.inner_text("p.host")).strip() == host
    assert await page.evaluate(SIDEWAYS) <= 0
    for selector in ("p.host", ".uri", "h1"):
        inside = await page.eval_on_selector(selector, "(e) => e.scrollWidth <= e.clientWidth")
        assert inside, selector
    box = await page.locator("p.host").bounding_box()
    assert box is not None and box["height"] > 40  # wrapped onto more than one line
    assert console.errors == []
    await context.close()


@pytest.mark.parametrize(
    ("name", "buttons"),
    [
        ("consent.html", ["button:Allow", "button:Deny"]),
        ("consent-warnings.html", ["button:Deny", "button:Allow"]),
    ],
)
async def test_the_keyboard_reaches_the_consent_controls_in_order_and_leaves_the_page(
    chromium: Browser,  # noqa: F811
    sample: PageSet,
    name: str,
    buttons: list[str],
) -> None:
    """The client's links, then "remember", then the two decisions (Deny first when a
    warning shows), then the approvals link; Tab once more returns to the top (no
    trap) and Shift+Tab walks the same way back."""
    context = await chromium.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(f"{sample.url}/{name}")
    order = await tab_through(page)
    assert len(order) == await page.locator(FOCUSABLE).count()  # every control, once
    decisions = [entry for entry in order if entry.startswith("button:")]
    assert decisions == buttons
    assert order.index("input:remember") < order.index(buttons[0])
    assert order[-1] == "a:Manage your approvals"
    backwards = []
    for _ in order:  # focus has left the page at its end: Shift+Tab comes back in
        await page.keyboard.press("Shift+Tab")
        backwards.append(await page.evaluate(FOCUSED))
    assert backwards == list(reversed(order))
    assert await tab_through(page) == order
    await page.keyboard.press("Tab")
    assert await page.evaluate(FOCUSED) == order[0]  # round again: not trapped
    await context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(
    "name", ["consent-warnings.html", "approvals.html", "approvals-confirm.html"]
)
async def test_every_focused_control_shows_a_ring_that_contrasts_with_the_card(
    chromium: Browser,  # noqa: F811
    sample: PageSet,
    name: str,
    scheme: Scheme,
) -> None:
    context = await chromium.new_context(viewport=DESKTOP, color_scheme=scheme)
    page = await context.new_page()
    await page.goto(f"{sample.url}/{name}")
    order = await tab_through(page)
    assert order
    await from_the_top(page)
    for entry in order:
        await page.keyboard.press("Tab")
        element = await page.evaluate_handle("document.activeElement")
        focused = await element.evaluate(RING)
        style, width, colour, _ = focused.split("|")
        backdrop = await element.evaluate(BACKDROP)
        await element.evaluate("(e) => e.blur()")
        assert await element.evaluate(RING) != focused, entry
        assert style == "solid" and float(width.removesuffix("px")) >= 2, (entry, focused)
        ratio = contrast(parse_rgb(colour), parse_rgb(backdrop))
        assert ratio >= 3, f"{entry}: focus ring {colour} on {backdrop} is {ratio:.2f}:1"
        await element.evaluate("(e) => e.focus()")  # Tab on from here
    await context.close()


@pytest.mark.parametrize("accent", [None, ACCENT])
async def test_in_the_dark_scheme_text_links_and_the_primary_button_read_at_4_5_to_1(
    chromium: Browser,  # noqa: F811
    start_upstream: StartUpstream,
    tmp_path: Path,
    accent: str | None,
) -> None:
    pages = await serve_pages(tmp_path, start_upstream, accent=accent)
    context = await chromium.new_context(viewport=DESKTOP, color_scheme="dark")
    page = await context.new_page()
    await page.goto(f"{pages.url}/consent.html")
    card = parse_rgb(
        await page.eval_on_selector("main", "(e) => getComputedStyle(e).backgroundColor")
    )
    assert sum(card) < 3 * 64  # a dark card: the scheme is followed
    for selector in ("main p", "main h1", "main a"):
        colour = await page.eval_on_selector(selector, "(e) => getComputedStyle(e).color")
        ratio = contrast(parse_rgb(colour), card)
        assert ratio >= 4.5, f"{selector}: {colour} on the card is {ratio:.2f}:1"
    button = page.locator("button.primary")
    text = parse_rgb(await button.evaluate("(e) => getComputedStyle(e).color"))
    fill = parse_rgb(await button.evaluate("(e) => getComputedStyle(e).backgroundColor"))
    assert contrast(text, fill) >= 4.5
    if accent is not None:
        assert fill == parse_rgb("rgb(109, 40, 217)")  # the operator's accent, in the dark too
    await context.close()


async def test_mirrored_the_decisions_read_from_the_right_primary_first(
    chromium: Browser,  # noqa: F811
    sample: PageSet,
) -> None:
    context = await chromium.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(f"{sample.url}/consent-warnings.html")
    await page.evaluate("document.documentElement.dir = 'rtl'")
    deny = await page.get_by_role("button", name="Deny").bounding_box()
    allow = await page.get_by_role("button", name="Allow").bounding_box()
    assert deny is not None and allow is not None
    assert deny["x"] > allow["x"]  # the primary action is the first one read, at the right
    assert await page.evaluate(SIDEWAYS) <= 0
    await context.close()


async def test_revoking_all_approvals_works_with_the_keyboard_alone(
    chromium: Browser,  # noqa: F811
    demo: DemoStack,  # noqa: F811
) -> None:
    """The approvals page's Revoke and "Revoke all" are reached by Tab; "Revoke all"
    opens the confirmation step, whose "Yes" and "No" are reached by Tab too."""
    context = await chromium.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await sign_in_remembered(page, demo)
    await page.goto(demo.gate_url + "/_consentgate/approvals")
    order = await tab_through(page)
    assert "button:Revoke" in order and "button:Revoke all\u2026" in order
    await from_the_top(page)
    for _ in range(order.index("button:Revoke all\u2026") + 1):
        await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("button.revoke-all-confirmed")
    confirm = await tab_through(page)
    assert confirm.index("button:Yes, revoke all") < confirm.index("a:No, keep my approvals")
    await from_the_top(page)
    for _ in range(confirm.index("button:Yes, revoke all") + 1):
        await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("p.empty")
    await context.close()
