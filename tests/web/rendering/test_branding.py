"""``[ui]`` on a running gate: an operator's templates, logo and accent colour, the
support link on the error pages; client values stay escaped and the page's headers
stay whatever a template does; assets are served under content-hashed names."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import aiohttp
import pytest

from consentgate.core.startup_errors import StartupError
from consentgate.web.rendering.pages import CSP
from tests.conftest import StartGate, StartStack, StartUpstream
from tests.support.browsersim import Browser, Page
from tests.support.fakeproxy import FakeProxy
from tests.web.consent_flow.test_authorize import auth_params, register

SCRIPT_NAME = "<script>alert(1)</script>"
LOGO = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><circle r="20"/></svg>'
CUSTOM_CONSENT = """{% extends "base.html" %}
{% block content %}
<h1 class="custom">{{ view.client_name }} would like in</h1>
<p class="custom-id">{{ view.client_id }}</p>
{% endblock %}
"""


def write_theme(tmp_path: Path) -> dict[str, str]:
    theme = tmp_path / "theme"
    theme.mkdir()
    (theme / "consent.html").write_text(CUSTOM_CONSENT)
    (theme / "logo.svg").write_text(LOGO)
    return {
        "templates_dir": str(theme),
        "logo_file": str(theme / "logo.svg"),
        "accent_color": "#0a7",
        "support_url": "https://help.example/ticket",
    }


def assert_page_headers(page: Page) -> None:
    assert page.headers["Content-Security-Policy"] == CSP
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"


async def test_a_custom_consent_template_still_escapes_the_client_name_and_keeps_the_headers(
    start_stack: StartStack, tmp_path: Path
) -> None:
    stack = await start_stack(ui=write_theme(tmp_path))
    client_id = await register(stack, client_name=SCRIPT_NAME)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
    assert page.status == 200
    assert '<h1 class="custom">' in page.text  # the operator's template
    assert "<script" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert_page_headers(page)
    assert stack.proxy.reached("/authorize") == []


async def test_a_gate_whose_template_uses_the_safe_filter_does_not_start(
    start_upstream: StartUpstream, start_gate: StartGate, tmp_path: Path
) -> None:
    theme = tmp_path / "theme"
    theme.mkdir()
    (theme / "consent.html").write_text("<h1>{{ view.client_name|safe }}</h1>")
    upstream = await start_upstream(FakeProxy().app())
    with pytest.raises(StartupError, match=r"ui\.templates_dir: the template .*consent\.html"):
        await start_gate(upstream, ui={"templates_dir": str(theme)})


async def test_the_logo_and_the_accent_are_hashed_immutable_files_and_the_csp_stays_strict(
    start_stack: StartStack, tmp_path: Path
) -> None:
    stack = await start_stack(ui=write_theme(tmp_path))
    async with Browser(stack.url) as browser:
        page = await browser.get("/_consentgate/approvals")
    assert_page_headers(page)
    assert "style=" not in page.text and "<style" not in page.text
    linked = re.findall(r'(?:href|src)="(/_consentgate/static/[^"]+)"', page.text)
    names = [url.rsplit("/", 1)[1] for url in linked]
    assert {re.sub(r"\.[0-9a-f]{12}\.", ".", name) for name in names} == {
        "favicon.svg",
        "consent.css",
        "theme.css",
        "logo.svg",
    }
    async with aiohttp.ClientSession() as session:
        for url, name in zip(linked, names, strict=True):
            async with session.get(stack.url + url) as response:
                body = await response.read()
                assert response.status == 200
                assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
                assert name.split(".")[-2] == hashlib.sha256(body).hexdigest()[:12]
                assert "sandbox" in response.headers["Content-Security-Policy"]
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                if name.startswith("theme."):
                    assert b"--accent: #00aa77;" in body
                if name.startswith("logo."):
                    assert body == LOGO.encode()
                    assert response.content_type == "image/svg+xml"
        async with session.get(stack.url + "/_consentgate/static/theme.0000000000.css") as gone:
            assert gone.status == 404


async def test_an_error_page_says_what_to_do_links_support_and_keeps_operator_terms_out(
    start_stack: StartStack, tmp_path: Path
) -> None:
    stack = await start_stack(ui=write_theme(tmp_path))
    async with Browser(stack.url) as browser:
        page = await browser.authorize({"client_id": "c"})  # no redirect_uri
    assert page.status == 400
    assert "This sign-in could not start" in page.text
    assert "Go back to the application" in page.text
    assert '<a href="https://help.example/ticket" rel="noopener noreferrer">' in page.text
    assert f"<code>{page.headers['X-Request-Id']}</code>" in page.text
    for operator_term in ("redirect_uri", "parameter", "Error code", "invalid_request"):
        assert operator_term not in page.text
    assert_page_headers(page)


async def test_without_a_support_url_the_page_asks_to_quote_the_request_id_to_the_operator(
    start_stack: StartStack,
) -> None:
    stack = await start_stack(consent={"service_name": "Acme Notes"})
    async with Browser(stack.url) as browser:
        page = await browser.authorize({"client_id": "c"})
        missing = await browser.get("/_consentgate/nothing-here")
    assert "If this keeps happening, tell the people who run Acme Notes" in page.text
    assert f"quote the request id <code>{page.headers['X-Request-Id']}</code>" in page.text
    assert "contact support" not in page.text.lower()
    assert missing.status == 404
    assert "Page not found" in missing.text
    assert f"Request id for support: <code>{missing.headers['X-Request-Id']}</code>" in missing.text
