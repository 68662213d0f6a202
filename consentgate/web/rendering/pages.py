"""Responses the gate writes itself: pages, JSON errors, and their security headers.

Every page of the gate — the consent page and every error page — carries the
headers of RFC 9700 §4.16 and §4.2.4 and MCP's security best practices:

* ``Content-Security-Policy`` with ``frame-ancestors 'none'`` and ``default-src
  'none'``: no framing (clickjacking), no script, no third-party resources;
* ``X-Frame-Options: DENY`` for browsers without CSP level 2;
* ``Referrer-Policy: no-referrer``: the authorization request's query must not
  leak to a linked site;
* ``Cache-Control: no-store``, ``X-Content-Type-Options: nosniff``.

The headers are set here after the template is rendered, so an operator's template
(``[ui] templates_dir``) cannot change them (docs/branding.md).

An error page says, in plain words, what happened and what the person can do
(``core/error_pages.py``), with the request id to quote; the operator's message
(which names the upstream, a parameter or an error code) goes to the
``consentgate.pages`` log with the same request id, and stays the
``error_description`` of the JSON that programs get.

A page speaks the language chosen for its request (``core/negotiation.py``): the
authorization request's ``ui_locales`` when the handler read one
(:func:`keep_ui_locales`), else the browser's ``Accept-Language``, chosen when the first
page is rendered (a relayed request pays nothing); the choice is kept
for the request, so its error pages speak the same language as its consent page.
The page says its language in ``Content-Language`` (RFC 9110 §8.5) as well as in
``<html lang>``. Pages are ``no-store``; they still carry ``Vary: Accept-Language``,
so that no cache that ignores ``no-store`` could hand one person's language to
another.

There is deliberately no ``form-action`` directive: it blocks the redirect chain
after the consent form (to the IdP, to ``claude://`` redirect URIs) in Chromium
(docs/references.md, the FastMCP lessons).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from aiohttp import web

from consentgate.config.model import Config
from consentgate.core.error_pages import error_wording
from consentgate.core.negotiation import negotiate
from consentgate.web.appkeys import PAGE_LANGUAGE, PAGE_UI_LOCALES, REQUEST_ID, SETTINGS, TEMPLATES
from consentgate.web.rendering.catalogs import Catalog, shown_service_name
from consentgate.web.rendering.templates import Templates

log = logging.getLogger("consentgate.pages")

CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: The static assets' own policy: a stylesheet or an image needs none of it, and an
#: SVG opened as a document must not run script (``sandbox``).
ASSET_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
CSP_WITH_REMOTE_IMAGES: Final = CSP.replace("img-src 'self'", "img-src 'self' https:")

SECURITY_HEADERS: Final = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def secure(response: web.StreamResponse, *, csp: str = CSP) -> web.StreamResponse:
    """Add the security headers every gate page carries."""
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Security-Policy"] = csp
    return response


def wants_html(request: web.Request) -> bool:
    """Browsers ask for text/html; API clients (MCP, curl -H json) get JSON."""
    return "text/html" in request.headers.get("Accept", "")


def choose_language(request: web.Request, ui_locales: str | None) -> str:
    """Choose the language of this request's pages: ``ui_locales`` (the authorization
    request's, OpenID Connect Core 1.0 §3.1.2.1) first, then ``Accept-Language``,
    among ``[ui] languages``, else ``[ui] default_language``."""
    ui = request[SETTINGS].config.ui
    chosen = negotiate(
        ui_locales, request.headers.get("Accept-Language"), ui.languages, ui.default_language
    )
    request[PAGE_LANGUAGE] = chosen
    return chosen


def keep_ui_locales(request: web.Request, ui_locales: str | None) -> None:
    """Keep the authorization request's ``ui_locales`` for this request's pages; the
    language is chosen only when a page is rendered, so a request relayed without a
    page pays no negotiation."""
    if ui_locales is not None:
        request[PAGE_UI_LOCALES] = ui_locales


def page_language(request: web.Request) -> str:
    """The language of this request's pages: chosen before, else from the kept
    ``ui_locales`` and ``Accept-Language``."""
    chosen = request.get(PAGE_LANGUAGE)
    return chosen if chosen is not None else choose_language(request, request.get(PAGE_UI_LOCALES))


def page_translator(request: web.Request) -> Catalog:
    """The words of this request's pages (for ``core`` builders)."""
    return request.app[TEMPLATES].catalog(page_language(request))


def page_context(
    config: Config,
    templates: Templates,
    request_id: str,
    *,
    language: str = "en",
    asset_base: str | None = None,
    approvals_url: str | None = None,
) -> dict[str, Any]:
    """The variables every template gets (docs/branding.md, the template contract).
    ``language``: the page's (for the default service name). ``asset_base`` and
    ``approvals_url`` default to the gate's own paths (the ``pages`` command points
    them at its files)."""
    if asset_base is None:
        asset_base = f"{config.server.prefix}/static"
    assets = templates.asset_urls(asset_base)
    return {
        "service_name": shown_service_name(config, templates.catalog(language)),
        "asset_base": asset_base,
        "assets": assets,
        "stylesheets": [assets[name] for name in ("consent.css", "theme.css") if name in assets],
        "favicon_url": assets.get("favicon.svg", ""),
        "logo_url": assets.get("logo", ""),
        "support_url": config.ui.support_url,
        "approvals_url": approvals_url or f"{config.server.prefix}/approvals",
        "request_id": request_id,
    }


def render_page(
    request: web.Request,
    template: str,
    *,
    status: int = 200,
    csp: str = CSP,
    **context: Any,
) -> web.Response:
    """A full HTML page of the gate, with the security headers (set after rendering,
    so no template changes them)."""
    templates = request.app[TEMPLATES]
    language = page_language(request)
    base = page_context(
        request[SETTINGS].config, templates, request.get(REQUEST_ID, ""), language=language
    )
    body = templates.render(template, language=language, **{**base, **context})
    response = web.Response(status=status, text=body, content_type="text/html", charset="utf-8")
    secure(response, csp=csp)
    response.headers["Content-Language"] = language
    response.headers["Vary"] = "Accept-Language"
    return response


def error_response(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    *,
    title: str | None = None,
    page: str | None = None,
) -> web.Response:
    """An error as a small page (browsers) or JSON (everything else); never a trace.

    The page's words come from ``core/error_pages.error_wording(status, page or code)``;
    ``message`` (and ``title``, the operator's heading) are logged with the request id
    and are the JSON's ``error_description``, never shown on the page."""
    if wants_html(request):
        wording = error_wording(status, page or code)
        # The reason is a field, not the message: it may quote the request, and a
        # field is written quoted and escaped on one line.
        log.info(
            "error page",
            extra={
                "fields": {
                    "request_id": request.get(REQUEST_ID, ""),
                    "status": status,
                    "code": code,
                    "reason": f"{title}: {message}" if title else message,
                }
            },
        )
        return render_page(
            request,
            "error.html",
            status=status,
            code=code,
            **wording.template_values(page_translator(request)),
        )
    return json_error(request, status, code, message)


def json_error(request: web.Request, status: int, code: str, message: str) -> web.Response:
    """An error as OAuth error JSON (RFC 6749 §5.2's shape), whatever ``Accept`` says."""
    document = {
        "error": code,
        "error_description": message,
        "request_id": request.get(REQUEST_ID, ""),
    }
    response = web.Response(
        status=status, text=json.dumps(document), content_type="application/json"
    )
    secure(response)
    return response
