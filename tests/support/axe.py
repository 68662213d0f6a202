"""axe-core, Deque's accessibility rules engine, run inside a page in chromium.

axe-core is an npm package, not a Python dependency: install it anywhere outside the
repository (``npm install --prefix /tmp/axe axe-core@4.14.1``) and point ``AXE_CORE_JS``
at its ``node_modules/axe-core/axe.min.js`` (not a ``CONSENTGATE_`` name: a gate a
test starts would read it as configuration). Without it the audit tests skip with
that reason, except under ``.ci/run``, which installs it and sets
``CI_REQUIRE_AXE=1`` so a missing file fails the run.

The gate's pages forbid every script (``script-src`` falls back to ``default-src
'none'``, ``web/rendering/pages.py``), so the audit's browser context is opened with
Playwright's ``bypass_csp=True``: only the injected axe script runs, the page itself
is unchanged. The tests that check the CSP holds open their contexts without it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page

from consentgate.web.rendering.pages import ASSET_CSP, secure

#: axe's impact levels, from the worst; the audit fails on the first two.
IMPACTS = ("critical", "serious", "moderate", "minor")
FAILING = frozenset({"critical", "serious"})

RUN_AXE = """
async () => {
  const results = await axe.run(document, { resultTypes: ["violations"] });
  return results.violations.map((v) => ({
    id: v.id,
    impact: v.impact || "minor",
    help: v.help,
    targets: v.nodes.slice(0, 4).map((n) => n.target.join(" ")),
  }));
}
"""


@dataclass(frozen=True)
class Violation:
    """One failed axe rule on one page (its first few offending elements)."""

    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.impact} {self.rule}: {self.help} at {', '.join(self.targets)}"


def axe_script() -> Path:
    """The path of ``axe.min.js``, or skip (fail under ``CI_REQUIRE_AXE=1``)."""
    configured = os.environ.get("AXE_CORE_JS", "")
    if configured and Path(configured).is_file():
        return Path(configured)
    reason = (
        f"AXE_CORE_JS={configured!r} is not axe-core's axe.min.js "
        "(npm install --prefix /tmp/axe axe-core@4.14.1 outside the repository)"
    )
    if os.environ.get("CI_REQUIRE_AXE") == "1":
        pytest.fail(f"CI_REQUIRE_AXE=1 but {reason}", pytrace=False)
    pytest.skip(reason)


async def audit(page: Page, script: Path) -> list[Violation]:
    """Every axe violation of the page as it is now (injected once per document)."""
    if not await page.evaluate("typeof axe !== 'undefined'"):
        await page.add_script_tag(path=str(script))
    found: list[dict[str, Any]] = await page.evaluate(RUN_AXE)
    return [Violation(v["id"], v["impact"], v["help"], tuple(v["targets"])) for v in found]


def counts(violations: Iterable[Violation]) -> Counter[str]:
    return Counter(v.impact for v in violations)


def table(found: dict[tuple[str, str], list[Violation]]) -> str:
    """The audit as a text grid: a row per page, a column per variant, each cell the
    violations by impact as critical/serious/moderate/minor."""
    pages = list(dict.fromkeys(page for page, _ in found))
    variants = list(dict.fromkeys(variant for _, variant in found))
    width = max(len(p) for p in pages)
    cell = max(len(v) for v in variants)
    head = f"{'c/s/m/n':<{width}} " + " ".join(f"{v:>{cell}}" for v in variants)
    lines = [head, "-" * len(head)]
    for page in pages:
        cells = []
        for variant in variants:
            counted = counts(found.get((page, variant), []))
            cells.append(f"{'/'.join(str(counted[i]) for i in IMPACTS):>{cell}}")
        lines.append(f"{page:<{width}} " + " ".join(cells))
    return "\n".join(lines)


def static_site(directory: Path) -> web.Application:
    """The files ``consentgate pages`` wrote, served with the gate's own headers (the
    strict CSP on the pages, the assets' policy on the rest), so the browser loads the
    stylesheet and the hashed assets exactly as from the gate."""

    async def headers(request: web.Request, response: web.StreamResponse) -> None:
        if request.path.endswith(".html"):
            secure(response)
        else:
            secure(response, csp=ASSET_CSP)

    app = web.Application()
    app.on_response_prepare.append(headers)
    app.router.add_static("/", directory)
    return app
