"""The IdP's return to the upstream proxy: only the approving browser may complete it.

FastMCP advisory GHSA-rww4-4w9c-7733: an attacker approves a client in their own
browser, copies the IdP URL the proxy redirects to, and sends it to the victim;
the victim signs in at the IdP, and the proxy's callback hands the victim's code
to the attacker's client. The fix, done here from the outside: when an approved
authorization request is answered with a redirect to the IdP carrying ``state``,
the gate sets a cookie holding a MAC of that state, of the browser's subject and
of the time (``web.authorize._bind_flow``); the callback is relayed only when the same
browser brings that cookie back, within ``binding_ttl``, once (the store remembers
used bindings until they expire).
"""

from __future__ import annotations

from aiohttp import web

from consentgate.audit.refusals import CallbackAccepted, CallbackRefusal, CallbackRefused
from consentgate.core.oauth.authorization_requests import (
    encode_parameters,
    parse_parameters,
)
from consentgate.core.oauth.oauth_errors import OAuthError
from consentgate.core.oauth.paths import RoutedPath
from consentgate.core.signed.cookies import set_cookie_header
from consentgate.core.trust.forwarding import address_group
from consentgate.web.appkeys import CLIENT_IP, CLOCK, COOKIE_CRYPTO, SETTINGS, STORE
from consentgate.web.audit_emit import audit_event, request_id
from consentgate.web.consent_flow.browser import Browser
from consentgate.web.relay import (
    RequestTooLarge,
    UpstreamExchange,
    UpstreamFailure,
    response_headers,
    stream_response,
    upstream_failure_response,
)
from consentgate.web.rendering.pages import error_response

#: Seconds a binding may appear issued in the future (several gates, clocks apart).
CLOCK_SKEW = 60

DIFFERENT_BROWSER = (
    "This sign-in was not started in this browser, or it was already completed. "
    "For your safety it was stopped. Start the sign-in again from the application, "
    "in this browser."
)


def _refused(
    request: web.Request,
    refusal: CallbackRefusal,
    *,
    subject: str | None = None,
    reason: str | None = None,
) -> None:
    """Audit a refused callback with its fixed reason and the client's network: anyone
    can send one, so the audit table counts them per network rather than keeping a row
    each (:data:`consentgate.audit.rows.AGGREGATED`); the log line keeps each."""
    audit_event(
        request,
        CallbackRefused(
            request_id=request_id(request),
            refusal=refusal,
            source=address_group(request[CLIENT_IP]),
            subject=subject,
            reason=reason,
        ),
    )


async def callback(request: web.Request, routed: RoutedPath) -> web.StreamResponse:
    """Check the flow binding, then relay the callback upstream, exactly as checked."""
    app = request.app
    config = request[SETTINGS].config
    crypto = app[COOKIE_CRYPTO]
    if request.method != "GET":
        return error_response(
            request, 405, "method_not_allowed", "The sign-in callback takes GET only."
        )
    try:
        parameters = parse_parameters(request.raw_path.partition("?")[2])
    except OAuthError as exc:
        _refused(request, "malformed", reason=exc.description)
        return error_response(request, 400, exc.code, exc.description)
    state = dict(parameters).get("state")
    browser = Browser(request)
    if not state:
        _refused(request, "no_state")
        return error_response(request, 403, "unbound_flow", DIFFERENT_BROWSER)
    found = crypto.check_binding(state, browser.subject or "", request.cookies)
    if found is None:
        _refused(request, "no_binding", subject=browser.subject or "")
        return error_response(request, 403, "unbound_flow", DIFFERENT_BROWSER)
    key, issued_at = found
    ttl = int(config.consent.binding_ttl)
    now = app[CLOCK]()
    fresh = issued_at <= now + CLOCK_SKEW and now - issued_at <= ttl
    if not fresh or not await app[STORE].use_binding(key, issued_at + ttl):
        refusal: CallbackRefusal = "replayed" if fresh else "expired"
        _refused(request, refusal, subject=browser.subject or "", reason=refusal)
        return error_response(request, 403, "unbound_flow", DIFFERENT_BROWSER)
    audit_event(request, CallbackAccepted(request_id=request_id(request), subject=browser.subject))

    binding_cookie = crypto.binding_cookie_name(state)
    target = f"{routed.forward_path}?{encode_parameters(parameters)}"
    try:
        async with UpstreamExchange(request, target, forward_body=False) as upstream:
            out = response_headers(request, upstream)
            out.add(
                "Set-Cookie",
                set_cookie_header(binding_cookie, "", max_age=0, secure=config.secure_cookies),
            )
            return await stream_response(request, upstream, out)
    except UpstreamFailure as exc:
        return upstream_failure_response(request, exc, "upstream_error")
    except RequestTooLarge:  # pragma: no cover - no body is forwarded
        return error_response(request, 413, "request_too_large", "The request is too large.")
