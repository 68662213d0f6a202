"""Where an authorization request continues after the gate's sign-in ([identity]):
``GET {prefix}/signin/continue?signin_ref=…``, the clean URL the provider's answer redirects
to (:mod:`consentgate.core.identity.resumption`).

The reference is taken once from the store, matching this browser
(:mod:`consentgate.store.parts.waiting_signins`), and the session cookie must still
name the person the sign-in named; then the waiting request is decided as if it had
just arrived, **with the ``Sec-Fetch-Site`` it first arrived with** (the provider's
return, and every redirect after it, is a cross-site navigation, FastMCP
GHSA-6x8h-498w-gv8c). Anything else — a reload, the back button, another browser, a
made-up reference, a session gone or changed — gets one clear page (410) and
nothing is relayed. A HEAD (a prefetch) is refused before the reference is taken.
"""

from __future__ import annotations

from aiohttp import web

from consentgate.core.identity.resumption import (
    REFERENCE_PARAMETER,
    Continuation,
    continue_key,
    is_reference,
)
from consentgate.core.oauth.authorization_requests import parse_parameters
from consentgate.core.oauth.oauth_errors import OAuthError
from consentgate.web.appkeys import STORE
from consentgate.web.consent_flow.authorize import resume_authorization
from consentgate.web.consent_flow.browser import Browser
from consentgate.web.identity.session import current_person
from consentgate.web.rendering.pages import error_response

USED = (
    "the reference names nothing waiting for this browser and its session (already "
    "used, expired, or another browser's)"
)


def _used(request: web.Request) -> web.Response:
    return error_response(request, 410, "signin_used", USED)


async def signin_continue(request: web.Request) -> web.StreamResponse:
    """GET {prefix}/signin/continue: decide the request that waited for the sign-in."""
    if request.method != "GET":  # a HEAD (a prefetch) must not use the reference up
        return error_response(request, 405, "method_not_allowed", "This page takes GET only.")
    try:
        reference = dict(parse_parameters(request.raw_path.partition("?")[2])).get(
            REFERENCE_PARAMETER, ""
        )
    except OAuthError as exc:
        return error_response(request, 400, exc.code, exc.description)
    browser = Browser(request)
    if not is_reference(reference) or browser.subject is None:
        return _used(request)
    payload = await request.app[STORE].signins.take(continue_key(reference), browser.subject)
    if payload is None:
        return _used(request)
    try:
        continuation = Continuation.from_json(payload)
    except ValueError:
        return _used(request)
    person = current_person(request, browser)
    if person is None or person.subject != continuation.person:
        return _used(request)
    return await resume_authorization(
        request, continuation.query, fetch_site=continuation.fetch_site, person=person
    )
