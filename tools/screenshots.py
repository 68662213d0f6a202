"""Regenerate the screenshots in docs/ from the demo, in Debian's chromium.

    python tools/screenshots.py --out docs/
    python tools/screenshots.py --out /tmp/shots --only consent-page-dark.png

It starts two demo stacks on loopback (``consentgate demo``'s gate, IdP, OAuth proxy
and client; one plain, one with a theme: an accent colour, a logo and a support
link), walks them in chromium through Playwright (``/usr/bin/chromium`` or
``$CHROMIUM_PATH``, never a downloaded browser) and writes one PNG per entry of
``SHOTS``: the page, the window's width, the colour scheme and the language the
browser asks for (``Accept-Language``). A new variant is a new entry.

The pages are the real ones (the demo's requests, its ports and request ids), so two
runs differ in those details. ``consent-page-cimd.png`` needs a metadata document
served over HTTPS by a test authority: the browser test writes it
(``UPDATE_DOCS_SCREENSHOTS=1``, tests/web/consent_flow/test_browser.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from playwright.async_api import Browser, Page, async_playwright

from consentgate.demo import DemoStack, run_demo

Flow = Literal["client", "attack", "approvals", "error"]
Scheme = Literal["light", "dark"]

#: The theme of the themed stack: the look docs/branding.md shows.
ACCENT = "#6d28d9"
LOGO = """<svg xmlns="http://www.w3.org/2000/svg" width="168" height="40" viewBox="0 0 168 40">
<rect width="40" height="40" rx="9" fill="#6d28d9"/>
<path d="M11 27 L20 11 L29 27 Z" fill="#ffffff"/>
<rect x="50" y="13" width="108" height="6" rx="3" fill="#6d28d9"/>
<rect x="50" y="24" width="72" height="5" rx="2.5" fill="#a78bfa"/>
</svg>
"""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The demo's attacker host: chromium resolves *.localhost to loopback itself (RFC
    # 6761 §6.3); the rule makes sure no DNS query is ever sent for it.
    "--host-resolver-rules=MAP attacker.localhost 127.0.0.1",
]


@dataclass(frozen=True)
class Shot:
    """One screenshot: the file, the stack, what the browser does, and how it looks.

    ``flow``: ``client`` (the demo client's sign-in), ``attack`` (the demo's attacker
    link), ``approvals`` (the approvals page after approving both with "remember"),
    ``error`` (an authorization request for an unknown client: a 400 page)."""

    filename: str
    flow: Flow
    themed: bool = False
    width: int = 1000
    #: The window's height; the shot is of the whole page, so only a short page
    #: (an error) shows the difference.
    height: int = 900
    scheme: Scheme = "light"
    language: str = "en"
    #: The phone shots are taken at twice the pixels, as a phone shows them.
    scale: int = 1


#: In order: the plain stack's consent shots come before its approvals shot (after
#: which both clients are remembered and pass without a page).
SHOTS: tuple[Shot, ...] = (
    Shot("consent-page.png", "client"),
    Shot("consent-page-warning.png", "attack"),
    Shot("consent-page-dark.png", "attack", scheme="dark"),
    Shot("consent-page-phone.png", "attack", width=375, height=740, scale=2),
    Shot("consent-page-ar.png", "attack", language="ar"),
    Shot("consent-page-branded.png", "client", themed=True),
    Shot("consent-page-branded-dark.png", "client", themed=True, scheme="dark"),
    Shot("error-page-branded.png", "error", themed=True, height=480),
    Shot("approvals-page.png", "approvals"),
)


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if path is None:
        raise SystemExit("no chromium: apt install chromium, or set CHROMIUM_PATH")
    return path


async def open_consent(page: Page, demo: DemoStack, *, attack: bool) -> None:
    await page.goto(demo.client_url + "/")
    await page.click("#attack" if attack else "#sign-in")
    await page.wait_for_selector("button.approve, #result")


async def sign_in(page: Page, demo: DemoStack, *, attack: bool, remember: bool) -> None:
    """Through the consent page and the demo IdP, as a person would."""
    await open_consent(page, demo, attack=attack)
    if await page.locator("button.approve").count():
        if remember:
            await page.locator("#remember").check()
        await page.locator("button.approve").click()
        await page.wait_for_selector("#result, #user")
    if await page.locator("#user").count():
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_selector("#result")


async def show(page: Page, demo: DemoStack, flow: Flow) -> None:
    """Bring ``page`` to the page the shot is of."""
    if flow in ("client", "attack"):
        await open_consent(page, demo, attack=flow == "attack")
        await page.wait_for_selector("button.approve")
    elif flow == "approvals":
        for attack in (False, True):
            await sign_in(page, demo, attack=attack, remember=True)
        await page.goto(demo.gate_url + "/_consentgate/approvals")
        await page.wait_for_selector("li.approval")
    else:
        await page.goto(demo.gate_url + "/authorize?client_id=unknown-client")
        await page.wait_for_selector("h1")


async def take(browser: Browser, demo: DemoStack, shot: Shot, out: Path) -> Path:
    context = await browser.new_context(
        viewport={"width": shot.width, "height": shot.height},
        device_scale_factor=shot.scale,
        color_scheme=shot.scheme,
        locale=shot.language,
        extra_http_headers={"Accept-Language": shot.language},
    )
    try:
        page = await context.new_page()
        await show(page, demo, shot.flow)
        path = out / shot.filename
        await page.screenshot(path=str(path), full_page=True)
        return path
    finally:
        await context.close()


class Stacks:
    """The plain and the themed demo, each started on first use and taught the IdP's
    host by one sign-in (so the consent page says where the person signs in next)."""

    def __init__(self, browser: Browser, exits: AsyncExitStack, workdir: Path) -> None:
        self.browser = browser
        self._exits = exits
        self._workdir = workdir
        self._started: dict[bool, DemoStack] = {}

    async def get(self, themed: bool) -> DemoStack:
        if themed not in self._started:
            sections: dict[str, dict[str, str]] = {}
            if themed:
                (self._workdir / "logo.svg").write_text(LOGO)
                sections = {
                    "ui": {
                        "logo_file": str(self._workdir / "logo.svg"),
                        "accent_color": ACCENT,
                        "support_url": "https://help.example/ticket",
                    },
                    "consent": {"service_name": "Acme Notes"},
                }
            data = self._workdir / ("themed" if themed else "plain")
            data.mkdir()
            demo = await self._exits.enter_async_context(run_demo(0, data, sections=sections))
            context = await self.browser.new_context()
            await sign_in(await context.new_page(), demo, attack=False, remember=False)
            await context.close()
            self._started[themed] = demo
        return self._started[themed]


async def run(out: Path, only: set[str]) -> list[Path]:
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="consentgate-shots-") as workdir:
        async with AsyncExitStack() as exits:
            playwright = await exits.enter_async_context(async_playwright())
            browser = await playwright.chromium.launch(
                executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
            )
            exits.push_async_callback(browser.close)
            stacks = Stacks(browser, exits, Path(workdir))
            for shot in SHOTS:
                if only and shot.filename not in only:
                    continue
                demo = await stacks.get(shot.themed)
                written.append(await take(browser, demo, shot, out))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the PNG files")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="FILE",
        help=f"only this file (repeatable): {', '.join(s.filename for s in SHOTS)}",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only) - {s.filename for s in SHOTS}
    if unknown:
        parser.error(f"--only: no such shot: {', '.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(run(args.out, set(args.only))):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
