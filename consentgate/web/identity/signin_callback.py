"""The identity provider's answer to the gate's own sign-in, and the return to the
authorization request that waited ([identity]).

In order, each failure a page and nothing relayed:

1. ``state`` names a request waiting for *this* browser; it is taken once
   (:mod:`consentgate.store.parts.waiting_signins`): a replayed callback, a ``state``
   swapped in from another browser's sign-in, or one that expired finds nothing
   (``signin_stale``).
2. ``iss`` (RFC 9207 §2.4): required when the provider advertises it, compared
   exactly whenever present, before an error is believed; a provider's ``error``
   fails closed (``signin_failed``).
3. The code is exchanged with the PKCE verifier (RFC 7636 §4.5), the ID token
   verified (:mod:`consentgate.core.identity.id_token`): signature, ``iss``, ``aud``,
   ``azp``, ``exp``/``iat``, and the ``nonce`` this sign-in sent.
4. The session cookie is set and the browser is redirected (303, RFC 9700 §4.12) to
   a clean URL of the gate carrying only a fresh, single-use reference
   (:mod:`consentgate.core.identity.resumption`): the code leaves the address bar and
   the history, and a reload cannot send it again. There
   (:mod:`consentgate.web.identity.signin_continue`) the waiting request is decided as
   if it had just arrived, **with the ``Sec-Fetch-Site`` it first arrived with**: the
   provider's return is always a cross-site navigation, and must neither make a
   remembered approval ask again nor make a cross-site arrival silent (FastMCP
   GHSA-6x8h-498w-gv8c).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from consentgate.audit.identity_events import SignedIn, SignInRefusal
from consentgate.core.identity.person import person_from_claims
from consentgate.core.identity.resumption import (
    CONTINUE_PATH,
    CONTINUE_SECONDS,
    REFERENCE_PARAMETER,
    Continuation,
    continue_key,
    new_reference,
)
from consentgate.core.identity.token_errors import IdTokenRejected
from consentgate.core.identity.transaction import (
    CallbackRefused,
    Waiting,
    callback_code,
    callback_state,
    state_key,
)
from consentgate.core.oauth.authorization_requests import parse_parameters
from consentgate.core.oauth.oauth_errors import OAuthError
from consentgate.web.appkeys import CLOCK, IDENTITY, SETTINGS, STORE
from consentgate.web.audit_emit import audit_event, request_id
from consentgate.web.consent_flow.browser import Browser
from consentgate.web.identity.provider import ProviderUnavailable, TokenRefused
from consentgate.web.identity.session import session_cookie
from consentgate.web.identity.signin_start import UNAVAILABLE, audit_refusal, redirect_uri
from consentgate.web.rendering.pages import error_response, secure

STALE = (
    "the sign-in's state names no request waiting for this browser (another browser's, "
    "expired, or already used)"
)


def _stale(request: web.Request) -> web.Response:
    audit_refusal(request, "stale")
    return error_response(request, 403, "signin_stale", STALE)


def _failed(request: web.Request, refusal: SignInRefusal, check: str) -> web.Response:
    audit_refusal(request, refusal, check)
    return error_response(request, 403, "signin_failed", f"sign-in refused: {check}")


async def signin_callback(request: web.Request) -> web.StreamResponse:
    """GET {prefix}/signin: the provider's answer to the gate's sign-in."""
    identity = request[SETTINGS].config.identity
    if request.method != "GET":  # a HEAD (a prefetch) must not use the sign-in up
        return error_response(request, 405, "method_not_allowed", "The sign-in takes GET only.")
    try:
        parameters = dict(parse_parameters(request.raw_path.partition("?")[2]))
        state = callback_state(parameters)
    except OAuthError as exc:
        return error_response(request, 400, exc.code, exc.description)
    except CallbackRefused:
        return _stale(request)
    browser = Browser(request)
    if browser.subject is None:
        return _stale(request)
    payload = await request.app[STORE].signins.take(state_key(state), browser.subject)
    if payload is None:
        return _stale(request)
    try:
        waiting = Waiting.from_json(payload)
    except ValueError:
        return _stale(request)
    provider = request.app[IDENTITY]
    try:
        code = callback_code(parameters, await provider.metadata())
        token = await provider.exchange(code, waiting.verifier, redirect_uri(request))
        claims = await provider.verify(token, waiting.nonce)
        person = person_from_claims(
            claims,
            issuer=identity.issuer,
            subject_claim=identity.subject_claim,
            display_claim=identity.display_claim,
        )
    except ProviderUnavailable:
        audit_refusal(request, "unavailable")
        return error_response(request, 503, "signin_unavailable", UNAVAILABLE)
    except CallbackRefused as exc:
        refusal: SignInRefusal = "issuer" if exc.reason == "issuer" else "provider_error"
        return _failed(request, refusal, exc.reason)
    except IdTokenRejected as exc:
        return _failed(request, "token", exc.reason)
    except TokenRefused as exc:
        return _failed(request, "token", f"token endpoint: {exc}")
    audit_event(
        request,
        SignedIn(request_id=request_id(request), subject=person.subject, browser=browser.subject),
    )
    # The name operators find this person by (consents list --user); shielded, one
    # small write on a person's first sign-in in this process.
    await asyncio.shield(request.app[STORE].people.remember(person.subject, person.display))
    # The request waits on under a new reference, bound to this browser and person;
    # shielded, so a browser that goes away leaves no half write.
    reference = new_reference()
    continuation = Continuation(waiting.query, waiting.fetch_site, person.subject)
    expires_at = int(request.app[CLOCK]()) + CONTINUE_SECONDS
    await asyncio.shield(
        request.app[STORE].signins.hold(
            continue_key(reference), browser.subject, continuation.to_json(), expires_at
        )
    )
    server = request[SETTINGS].config.server
    location = (
        f"{server.public_url}{server.prefix}{CONTINUE_PATH}?{REFERENCE_PARAMETER}={reference}"
    )
    response = web.Response(status=303, headers={"Location": location})
    secure(response)
    response.headers.add("Set-Cookie", session_cookie(request, browser.subject, person))
    return response
