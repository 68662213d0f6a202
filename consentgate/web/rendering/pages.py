"""Responses the gate writes itself: pages, JSON errors, and their security headers.

Every page of the gate — the consent page and every error page — carries the
headers of RFC 9700 §4.16 and §4.2.4 and MCP's security best practices:

* ``Content-Security-Policy`` with ``frame-ancestors 'none'`` and ``default-src
  'none'``: no framing (clickjacking), no script, no third-party resources;
* ``X-Frame-Options: DENY`` for browsers without CSP level 2;
* ``Referrer-Policy: no-referrer``: the authorization request's query must not
  leak to a linked site;
* ``Cache-Control: no-store``, ``X-Content-Type-Options: nosniff``.

There is deliberately no ``form-action`` directive: it blocks the redirect chain
after the consent form (to the IdP, to ``claude://`` redirect URIs) in Chromium
(docs/references.md, the FastMCP lessons).
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from consentgate.web.appkeys import REQUEST_ID, SETTINGS, TEMPLATES

CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
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


def render_page(
    request: web.Request,
    template: str,
    *,
    status: int = 200,
    csp: str = CSP,
    **context: Any,
) -> web.Response:
    """A full HTML page of the gate, with the security headers."""
    config = request[SETTINGS].config
    body = request.app[TEMPLATES].render(
        template,
        service_name=config.consent.service_name,
        asset_base=f"{config.server.prefix}/static",
        approvals_url=f"{config.server.prefix}/approvals",
        request_id=request.get(REQUEST_ID, ""),
        **context,
    )
    response = web.Response(status=status, text=body, content_type="text/html", charset="utf-8")
    secure(response, csp=csp)
    return response


def error_response(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    *,
    title: str | None = None,
) -> web.Response:
    """An error as a small page (browsers) or JSON (everything else); never a trace."""
    if wants_html(request):
        return render_page(
            request,
            "error.html",
            status=status,
            title=title or _default_title(status),
            message=message,
            code=code,
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


def _default_title(status: int) -> str:
    return {
        400: "This request cannot be accepted",
        403: "This request was refused",
        404: "Not found",
        405: "Method not allowed",
        413: "The request is too large",
        502: "The service behind this gate is unreachable",
        503: "The service is not ready",
        504: "The service behind this gate did not answer in time",
    }.get(status, "Something went wrong")
