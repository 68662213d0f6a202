"""Errors for the client, and the one rule about where they may go.

An error is redirected to the client only when the redirect URI is one the client
registered, the gate saw it registering, and the person approved it or the
request is otherwise verified; otherwise the person gets a page (RFC 6749
§4.1.2.1, RFC 9700 §4.11.2: a gate that redirects errors anywhere is an open
redirector). Redirected errors name the issuer (``iss``, RFC 9207 §2).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from consentgate.core.oauth import AuthorizationRequest, error_redirect
from consentgate.web.appkeys import ISSUER, UPSTREAM

MAX_METADATA_BYTES: Final = 256 * 1024


async def issuer(app: web.Application) -> str | None:
    """The upstream's issuer identifier: configured, or read once from its metadata."""
    upstream = app[UPSTREAM]

    async def fetch(path: str) -> tuple[int, bytes]:
        return await upstream.fetch(path, total_seconds=3.0, max_bytes=MAX_METADATA_BYTES)

    return await app[ISSUER].get(fetch)


async def redirect_error(
    request: web.Request, auth: AuthorizationRequest, error: str
) -> web.Response:
    """A 303 to the client's redirect URI with ``error`` and its ``state``; the caller has
    checked that this redirect URI may receive it."""
    location = error_redirect(
        auth.redirect_uri, error, state=auth.state, issuer=await issuer(request.app)
    )
    response = web.Response(status=303, headers={"Location": location})
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
