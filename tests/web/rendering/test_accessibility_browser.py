"""Every page the gate shows, audited by axe-core in Debian's chromium: at a phone's
375 px and at desktop width, light and dark, left to right and mirrored, with the
shipped look and with an operator's theme (accent colour and logo). No violation of
impact serious or critical is allowed (WCAG 2.2 AA and axe's best practices).

The pages are the sample set ``consentgate pages`` writes (every template, every
error wording), served over loopback with the gate's headers. The audit's browser
context bypasses the pages' CSP so that the injected axe script can run
(``tests/support/axe.py``); nothing else is injected. Run with ``-s`` to see the
table of violations by impact for every page and variant.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from playwright.async_api import Browser

from consentgate.cli import main
from consentgate.demo import DemoStack
from tests.conftest import StartUpstream
from tests.support.axe import (
    FAILING,
    IMPACTS,
    Violation,
    audit,
    axe_script,
    counts,
    static_site,
    table,
)
from tests.web.consent_flow.test_browser import (  # noqa: F401 (chromium, demo: fixtures)
    chromium,
    demo,
    open_consent,
    sign_in_remembered,
)
from tests.web.rendering.test_branded_browser import ACCENT, LOGO

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CONFIG = """[server]
public_url = "https://gate.example"
[upstream]
url = "http://127.0.0.1:9"
[consent]
service_name = "Example Notes Cloud"
"""
THEME = """[ui]
logo_file = "logo.svg"
accent_color = "{accent}"
support_url = "https://help.example/ticket"
"""

#: (name, viewport width): a small phone and a laptop.
WIDTHS = (("375px", 375), ("desktop", 1280))
Scheme = Literal["light", "dark"]
SCHEMES: tuple[Scheme, ...] = ("light", "dark")


@dataclass(frozen=True)
class PageSet:
    """The written pages and the loopback origin they are served from."""

    url: str
    names: list[str]


def write_pages(tmp_path: Path, *, accent: str | None) -> Path:
    config = tmp_path / "gate.toml"
    text = CONFIG
    if accent is not None:
        (tmp_path / "logo.svg").write_text(LOGO)
        text += THEME.format(accent=accent)
    config.write_text(text)
    out = tmp_path / "pages"
    assert main(["pages", "--config", str(config), "--out", str(out)]) == 0
    return out


async def serve_pages(
    tmp_path: Path, start_upstream: StartUpstream, *, accent: str | None
) -> PageSet:
    out = write_pages(tmp_path, accent=accent)
    names = sorted(p.name for p in out.glob("*.html") if p.name != "index.html")
    return PageSet(await start_upstream(static_site(out)), names)


def variants() -> Iterator[tuple[str, int, Scheme, str]]:
    for scheme in SCHEMES:
        for width_name, width in WIDTHS:
            for direction in ("ltr", "rtl"):
                yield f"{width_name}/{scheme}/{direction}", width, scheme, direction


async def audit_page_set(
    chromium: Browser,  # noqa: F811
    pages: PageSet,
) -> dict[tuple[str, str], list[Violation]]:
    """Every page in every variant: the violations by ``(page, variant)``."""
    script = axe_script()
    found: dict[tuple[str, str], list[Violation]] = {}
    for label, width, scheme, direction in variants():
        context = await chromium.new_context(
            viewport={"width": width, "height": 900},
            color_scheme=scheme,
            bypass_csp=True,
        )
        page = await context.new_page()
        for name in pages.names:
            await page.goto(f"{pages.url}/{name}")
            if direction == "rtl":
                await page.evaluate("document.documentElement.dir = 'rtl'")
            found[(name.removesuffix(".html"), label)] = await audit(page, script)
        await context.close()
    return found


def report(title: str, found: dict[tuple[str, str], list[Violation]]) -> list[str]:
    """Print the grid (``-s``); the serious and critical violations, for the assert."""
    print(f"\n{title}: axe-core violations by impact\n{table(found)}")
    total = counts(v for violations in found.values() for v in violations)
    print("total: " + ", ".join(f"{total[i]} {i}" for i in IMPACTS))
    return [
        f"{page} {variant}: {violation}"
        for (page, variant), violations in found.items()
        for violation in violations
        if violation.impact in FAILING
    ]


@pytest.mark.parametrize(
    ("theme", "accent"), [("shipped look", None), (f"theme {ACCENT} with a logo", ACCENT)]
)
async def test_no_page_has_a_serious_or_critical_accessibility_violation(
    chromium: Browser,  # noqa: F811
    start_upstream: StartUpstream,
    tmp_path: Path,
    theme: str,
    accent: str | None,
) -> None:
    pages = await serve_pages(tmp_path, start_upstream, accent=accent)
    shipped = {"consent.html", "consent-warnings.html", "approvals.html", "approvals-confirm.html"}
    assert shipped <= set(pages.names) and len(pages.names) > 20  # and every error page
    failing = report(theme, await audit_page_set(chromium, pages))
    assert failing == [], "\n".join(failing)


async def test_the_audit_reports_a_page_without_a_language_and_with_faint_text(
    chromium: Browser,  # noqa: F811
    start_upstream: StartUpstream,
    tmp_path: Path,
) -> None:
    """The audit can fail: the same page, its ``lang`` removed and its lead paragraph
    made faint, gives axe's serious ``html-has-lang`` and ``color-contrast``."""
    script = axe_script()
    pages = await serve_pages(tmp_path, start_upstream, accent=None)
    context = await chromium.new_context(bypass_csp=True)
    page = await context.new_page()
    await page.goto(f"{pages.url}/denied.html")
    assert [v for v in await audit(page, script) if v.impact in FAILING] == []
    await page.evaluate(
        "document.documentElement.removeAttribute('lang');"
        "document.querySelector('p.lead').style.color = '#d0d0d0'"
    )
    found = {v.rule for v in await audit(page, script) if v.impact in FAILING}
    assert found == {"html-has-lang", "color-contrast"}
    await context.close()


async def test_the_demos_real_pages_have_no_serious_or_critical_violation(
    chromium: Browser,  # noqa: F811
    demo: DemoStack,  # noqa: F811
) -> None:
    """The pages as a real sign-in shows them (the client's age, where the person signs
    in next and what the IdP is asked for, two approvals, the "Revoke all" step, an
    error), from the demo's gate with its own CSP bypassed for the audit only."""
    script = axe_script()
    found: dict[tuple[str, str], list[Violation]] = {}
    for scheme in SCHEMES:
        for width_name, width in WIDTHS:
            context = await chromium.new_context(
                viewport={"width": width, "height": 900},
                color_scheme=scheme,
                bypass_csp=True,
            )
            page = await context.new_page()
            variant = f"{width_name}/{scheme}"
            await sign_in_remembered(page, demo)  # the IdP's host; an approval here
            await open_consent(page, demo, attack=True)
            found[("consent (attacker)", variant)] = await audit(page, script)
            await page.goto(demo.gate_url + "/_consentgate/approvals")
            found[("approvals", variant)] = await audit(page, script)
            await page.get_by_role("button", name="Revoke all").click()
            await page.wait_for_selector("button.revoke-all-confirmed")
            found[("approvals confirm", variant)] = await audit(page, script)
            await page.goto(demo.gate_url + "/authorize?client_id=unknown")
            found[("error 400", variant)] = await audit(page, script)
            await context.close()
    failing = report("the demo's gate", found)
    assert failing == [], "\n".join(failing)


async def test_no_element_carries_a_name_its_role_does_not_allow(
    chromium: Browser,  # noqa: F811
    start_upstream: StartUpstream,
    tmp_path: Path,
) -> None:
    """ARIA 1.2 prohibits ``aria-label`` on a paragraph: a screen reader may ignore the
    name or read it instead of the text, here the full redirect address itself. axe
    files that under "needs review", not as a violation, so it is asked for directly."""
    script = axe_script()
    pages = await serve_pages(tmp_path, start_upstream, accent=None)
    context = await chromium.new_context(bypass_csp=True)
    page = await context.new_page()
    flagged = {}
    for name in pages.names:
        await page.goto(f"{pages.url}/{name}")
        await page.add_script_tag(path=str(script))
        found = await page.evaluate(
            """async () => {
              const options = { runOnly: ["aria-prohibited-attr"] };
              const r = await axe.run(document, options);
              return [...r.violations, ...r.incomplete].flatMap(
                (v) => v.nodes.map((n) => n.target.join(" ")));
            }"""
        )
        if found:
            flagged[name] = found
    assert flagged == {}
    await context.close()
