"""Errors for the client, and the one rule about where they may go.

An error is redirected to the client only when the redirect URI is one the client
registered, the gate saw it registering, and the person approved it or the
request is otherwise verified; otherwise the person gets a page (RFC 6749
§4.1.2.1, RFC 9700 §4.11.2: a gate that redirects errors anywhere is an open
redirector). Redirected errors name the issuer (``iss``, RFC 9207 §2) exactly as the
upstream's metadata gives it to clients through the gate; while it is unknown (the
metadata unreadable) nothing is redirected: a client must not act on an error
without it (RFC 9207 §2.4, MCP 2026-07-28), so the caller shows its local page
and the audit event ``error_redirect_withheld`` says why.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from consentgate.audit.refusals import ErrorRedirectWithheld
from consentgate.core.oauth.authorization_requests import AuthorizationRequest, error_redirect
from consentgate.core.oauth.oauth_errors import OAuthError
from consentgate.core.oauth.upstream_endpoints import metadata_request_headers
from consentgate.web.appkeys import AUDIT, ISSUER, LIVE_SETTINGS, REQUEST_ID, UPSTREAM

MAX_METADATA_BYTES: Final = 256 * 1024


async def issuer(app: web.Application) -> str | None:
    """The upstream's issuer identifier: configured, or read once from its metadata as
    a client's request through the gate reads it (the forwarded headers the relay
    sends: an upstream may build its issuer from them)."""
    upstream = app[UPSTREAM]
    headers = metadata_request_headers(app[LIVE_SETTINGS].current.config)

    async def fetch(path: str) -> tuple[int, bytes]:
        return await upstream.fetch(
            path, total_seconds=3.0, max_bytes=MAX_METADATA_BYTES, headers=headers
        )

    return await app[ISSUER].get(fetch)


async def redirect_error(
    request: web.Request, auth: AuthorizationRequest, error: type[OAuthError]
) -> web.Response | None:
    """A 303 to the client's redirect URI with ``error``'s code, its ``state`` and ``iss``; the
    caller has checked that this redirect URI may receive it. None when the issuer is
    unknown: the caller shows its local page instead."""
    named = await issuer(request.app)
    if named is None:
        request.app[AUDIT].emit(
            ErrorRedirectWithheld(
                request_id=request[REQUEST_ID],
                error=error.code,
                client_id=auth.client_id,
                redirect_uri=auth.redirect_uri,
            )
        )
        return None
    location = error_redirect(auth.redirect_uri, error.code, state=auth.state, issuer=named)
    response = web.Response(status=303, headers={"Location": location})
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
