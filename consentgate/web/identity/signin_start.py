"""The start of a sign-in at the gate: the authorization request waits, the browser goes
to the identity provider ([identity]).

Before the gate decides for a browser with no gate session
(:mod:`consentgate.web.consent_flow.authorize`), it keeps the validated authorization
request, and its ``Sec-Fetch-Site`` as it arrived, in the store
(:mod:`consentgate.store.parts.waiting_signins`), bound to this browser, for
:data:`WAIT_SECONDS`; then it sends the browser to the provider with ``state``,
``nonce`` and a PKCE S256 challenge (:mod:`consentgate.core.identity.transaction`).
Nothing of the original request goes to the provider. A provider that cannot be
reached fails closed: a page, nothing relayed. Each start writes a row, so starts
are a budget per client network (:mod:`consentgate.core.identity.start_budget`).
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from consentgate.audit.identity_events import SignInRefusal, SignInRefused
from consentgate.core.identity.transaction import (
    SignInStart,
    Waiting,
    authorization_url,
    state_key,
)
from consentgate.core.oauth.authorization_requests import AuthorizationRequest, encode_parameters
from consentgate.core.signed.records import MAX_PENDING_PAYLOAD
from consentgate.core.trust.forwarding import address_group
from consentgate.web.appkeys import CLIENT_IP, CLOCK, IDENTITY, SETTINGS, STORE
from consentgate.web.audit_emit import audit_event, request_id
from consentgate.web.consent_flow.browser import Browser
from consentgate.web.identity.provider import ProviderUnavailable
from consentgate.web.identity.session import signed_out_here
from consentgate.web.rendering.pages import error_response, secure

#: How long an authorization request waits for its sign-in (seconds).
WAIT_SECONDS: Final = 600
#: The gate's own callback, under ``[server] prefix``.
CALLBACK_PATH: Final = "/signin"

UNAVAILABLE: Final = "the identity provider cannot be reached; no sign-in, nothing relayed"


def audit_refusal(request: web.Request, refusal: SignInRefusal, check: str | None = None) -> None:
    """Audit a refused sign-in by its fixed reason and the client's network."""
    audit_event(
        request,
        SignInRefused(
            request_id=request_id(request),
            refusal=refusal,
            source=address_group(request[CLIENT_IP]),
            check=check,
        ),
    )


def redirect_uri(request: web.Request) -> str:
    """The redirect URI the gate registers at the provider."""
    server = request[SETTINGS].config.server
    return f"{server.public_url}{server.prefix}{CALLBACK_PATH}"


async def start_signin(
    request: web.Request, auth: AuthorizationRequest, browser: Browser, fetch_site: str | None
) -> web.Response:
    """Keep the request waiting and send the browser to the provider."""
    config = request[SETTINGS].config.identity
    provider = request.app[IDENTITY]
    try:
        metadata = await provider.metadata()
    except ProviderUnavailable:
        audit_refusal(request, "unavailable")
        return error_response(request, 503, "signin_unavailable", UNAVAILABLE)
    if not provider.starts.take(address_group(request[CLIENT_IP])):
        audit_refusal(request, "busy")
        response = error_response(
            request, 429, "temporarily_unavailable", "too many sign-ins started from this network"
        )
        response.headers["Retry-After"] = "60"
        return response
    start = SignInStart.new()
    waiting = Waiting(encode_parameters(auth.parameters), fetch_site, start.nonce, start.verifier)
    payload = waiting.to_json()
    if len(payload.encode("utf-8")) > MAX_PENDING_PAYLOAD:
        return error_response(
            request, 413, "request_too_large", "The authorization request is too large to wait."
        )
    subject = browser.ensure()
    expires_at = int(request.app[CLOCK]()) + WAIT_SECONDS
    # Shielded: a browser that goes away must not leave half a write.
    await asyncio.shield(
        request.app[STORE].signins.hold(state_key(start.state), subject, payload, expires_at)
    )
    location = authorization_url(
        metadata,
        client_id=config.client_id,
        redirect_uri=redirect_uri(request),
        scopes=config.scopes,
        start=start,
        prompt="login" if signed_out_here(request) else None,
    )
    response = web.Response(status=302, headers={"Location": location})
    secure(response)
    for header in browser.cookies_to_set():
        response.headers.add("Set-Cookie", header)
    return response
