"""A scripted browser for the gate tests: its own cookie jar, the Fetch Metadata
headers a real browser sends, and the consent form read back from the page.

The real-browser tests (Playwright + chromium) live in test_browser.py; this
one is for the many protocol cases that need exact control of each request.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

FORM_FIELD = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


@dataclass
class Page:
    status: int
    headers: CIMultiDictProxy[str]
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    def form(self) -> dict[str, str]:
        return {name: html.unescape(value) for name, value in FORM_FIELD.findall(self.text)}

    @property
    def is_consent_page(self) -> bool:
        return self.status == 200 and 'name="decision" value="approve"' in self.text

    def location_query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.location).query))


class Browser:
    """One browser profile: cookies persist between its requests, not across browsers."""

    def __init__(
        self, gate_url: str, *, source: str | None = None, fresh_connections: bool = False
    ) -> None:
        """``source``: the loopback address to connect from (127.0.0.2, ...), so that
        the gate sees another client address. ``fresh_connections``: a new connection
        per request (behind a round-robin front, each request may reach another gate)."""
        self.gate_url = gate_url
        connector = aiohttp.TCPConnector(
            local_addr=(source, 0) if source else None, force_close=fresh_connections
        )
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), auto_decompress=True, connector=connector
        )

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get(self, target: str, *, site: str | None = "none", **headers: str) -> Page:
        """A top-level navigation; ``site`` is the Sec-Fetch-Site value (None: not sent)."""
        sent = {"Accept": "text/html", **headers}
        if site is not None:
            sent["Sec-Fetch-Site"] = site
            sent["Sec-Fetch-Mode"] = "navigate"
        url = target if target.startswith("http") else self.gate_url + target
        async with self.session.get(url, headers=sent, allow_redirects=False) as response:
            return Page(response.status, response.headers, await response.text())

    async def authorize(self, params: dict[str, str], *, site: str | None = "none") -> Page:
        return await self.get("/authorize?" + urllib.parse.urlencode(params), site=site)

    async def answer(
        self,
        page: Page,
        decision: str = "approve",
        *,
        remember: bool = False,
        extra: dict[str, str] | None = None,
        override: dict[str, str] | None = None,
        origin: str | None = "self",
        site: str | None = "same-origin",
    ) -> Page:
        """Submit the consent form of ``page`` as the browser would."""
        form: dict[str, Any] = {**page.form(), "decision": decision}
        if remember:
            form["remember"] = "yes"
        form.update(extra or {})
        form.update(override or {})
        headers = {"Accept": "text/html"}
        if origin is not None:
            headers["Origin"] = self.gate_url if origin == "self" else origin
        if site is not None:
            headers["Sec-Fetch-Site"] = site
        async with self.session.post(
            f"{self.gate_url}/_consentgate/consent",
            data=form,
            headers=headers,
            allow_redirects=False,
        ) as response:
            return Page(response.status, response.headers, await response.text())

    def cookie_names(self) -> list[str]:
        return sorted(cookie.key for cookie in self.session.cookie_jar)

    def cookie_value(self, name: str) -> str | None:
        for cookie in self.session.cookie_jar:
            if cookie.key == name:
                return cookie.value
        return None

    def set_cookie(self, name: str, value: str) -> None:
        self.session.cookie_jar.update_cookies({name: value}, URL(self.gate_url))
