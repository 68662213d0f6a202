"""The gate: authorization requests, the consent answer, the IdP callback, registration.

This is the product. Its promises, and the advisories they come from:

* No authorization request for a client this browser has not approved reaches
  the upstream (MCP 2025-11-25, "Confused Deputy Problem": proxies with a static
  client id MUST obtain consent for each dynamically registered client).
* A remembered approval is used silently only on navigations that did not come
  from another site (``Sec-Fetch-Site`` none/same-origin/same-site; a missing
  header means ask) — FastMCP GHSA-6x8h-498w-gv8c.
* The consent form is protected by a per-render, double-submitted CSRF token
  bound to a server-side pending request; the POST trusts nothing from the form
  but the pending id, the token and the choice (Cloudflare's early demos trusted
  hidden fields). A second render does not invalidate the first (FastMCP #4814).
* After approval the browser is sent on with a 303, never a 307, so the form is
  not re-posted to the IdP (RFC 9700 §4.12).
* The upstream flow is bound to the approving browser: the IdP redirect that the
  upstream answers with gets a per-transaction cookie holding a MAC of its
  ``state``; the callback needs that cookie, once (FastMCP GHSA-rww4-4w9c-7733).
* Errors are redirected only to a redirect URI the client registered and the gate
  saw registering; otherwise the person gets a page (RFC 6749 §4.1.2.1, RFC 9700
  §4.11.2).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any, Final

from aiohttp import web
from multidict import CIMultiDict

from consentgate.core.clientinfo import build_view
from consentgate.core.cookies import same_token, set_cookie_header
from consentgate.core.forwarding import address_group
from consentgate.core.oauth import (
    AuthorizationRequest,
    OAuthRequestError,
    Parameters,
    consent_redirect_key,
    encode_parameters,
    error_redirect,
    parse_authorization_request,
    parse_parameters,
    redirect_uri_matches,
)
from consentgate.core.paths import RoutedPath
from consentgate.core.pending import BadPending, PendingConsent
from consentgate.core.records import MAX_PENDING_PAYLOAD, ClientRecord
from consentgate.core.urls import split_url
from consentgate.store import PendingFull
from consentgate.web.appkeys import (
    CLIENT_IP,
    CLOCK,
    COOKIE_CRYPTO,
    ISSUER,
    SETTINGS,
    STORE,
    UPSTREAM,
)
from consentgate.web.audit import audit_event
from consentgate.web.bodies import read_up_to
from consentgate.web.browser import Browser
from consentgate.web.pages import CSP, CSP_WITH_REMOTE_IMAGES, error_response, render_page
from consentgate.web.relay import (
    RequestTooLarge,
    UpstreamExchange,
    UpstreamFailure,
    response_headers,
    stream_response,
    upstream_headers,
)

#: Navigations that cannot have been started by another site (Fetch Metadata).
SILENT_FETCH_SITES: Final = frozenset({"none", "same-origin", "same-site"})
MAX_FORM_BYTES: Final = 64 * 1024
MAX_METADATA_BYTES: Final = 256 * 1024


class FormTooLarge(Exception):
    pass


# --- small helpers --------------------------------------------------------------------


def _query_of(request: web.Request) -> str:
    return request.raw_path.partition("?")[2]


async def _read_form(request: web.Request) -> str:
    """A urlencoded POST body, bounded; other content types are refused."""
    if not request.body_exists:
        return ""
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthRequestError(
            "invalid_request", "A POST here must be an application/x-www-form-urlencoded form."
        )
    body, complete = await read_up_to(request.content, MAX_FORM_BYTES)
    if not complete:
        raise FormTooLarge
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        raise OAuthRequestError("invalid_request", "The form is not urlencoded ASCII.") from None


def _bad_request(request: web.Request, error: OAuthRequestError) -> web.Response:
    audit_event(
        request,
        "request_refused",
        "authorization request refused",
        error=error.code,
        reason=error.description,
    )
    return error_response(
        request,
        400,
        error.code,
        error.description,
        title="This sign-in request cannot be accepted",
    )


def _origin_of(url: str) -> str:
    parts = split_url(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _duration_text(seconds: float) -> str:
    days = seconds / 86400
    if days >= 1:
        return f"{round(days)} days" if round(days) != 1 else "1 day"
    hours = max(round(seconds / 3600), 1)
    return f"{hours} hours" if hours != 1 else "1 hour"


async def _issuer(app: web.Application) -> str | None:
    upstream = app[UPSTREAM]

    async def fetch(path: str) -> tuple[int, bytes]:
        return await upstream.fetch(path, total_seconds=3.0, max_bytes=MAX_METADATA_BYTES)

    return await app[ISSUER].get(fetch)


# --- the authorization endpoint ----------------------------------------------------------


async def authorize(request: web.Request, routed: RoutedPath) -> web.StreamResponse:
    """Intercept an authorization request: relay it only with this browser's consent."""
    app = request.app
    config = request[SETTINGS].config
    if request.method not in ("GET", "POST"):
        return error_response(
            request, 405, "method_not_allowed", "The authorization endpoint takes GET or POST."
        )
    try:
        body = await _read_form(request) if request.method == "POST" else ""
        parameters = parse_parameters(_query_of(request), body)
        auth = parse_authorization_request(
            parameters,
            allow_request_uri=config.consent.allow_request_uri,
            allow_request_object=config.consent.allow_request_object,
        )
    except OAuthRequestError as exc:
        return _bad_request(request, exc)
    except FormTooLarge:
        return error_response(request, 413, "request_too_large", "The form is too large.")

    store = app[STORE]
    client = await store.get_client(auth.client_id)
    registered = client is not None and any(
        redirect_uri_matches(auth.redirect_uri, uri) for uri in client.redirect_uris
    )
    if client is not None and auth.redirect_uri and not registered:
        return _bad_request(
            request,
            OAuthRequestError(
                "invalid_request",
                "The redirect_uri is not one this client registered; the request is refused "
                "without redirecting (RFC 6749 §4.1.2.1).",
            ),
        )

    browser = Browser(request)
    reason = await _silent_reason(request, auth, browser.subject)
    if reason is not None:
        fields = {
            "reason": reason,
            "client_id": auth.client_id,
            "redirect_uri": auth.redirect_uri,
            "subject": browser.subject or "",
        }
        return await forward_authorization(
            request,
            auth.parameters,
            browser,
            after_post=False,
            audit=("consent_silent", "authorization relayed without asking", fields),
        )

    if "none" in auth.prompt:
        # OIDC Core §3.1.2.6: no UI allowed, so the answer is consent_required. But
        # registration is open, so "registered" says nothing about who owns the
        # redirect URI: an error is redirected only to a destination this browser
        # approved for this exact request; anything else gets a local page, or the
        # gate is an open redirect (RFC 9700 §4.11.2; hardening issue #10, point 10).
        approved = (
            registered
            and browser.subject is not None
            and await store.is_approved(
                browser.subject,
                auth.client_id,
                consent_redirect_key(auth.redirect_uri),
                auth.scopes,
                auth.resource,
            )
        )
        return await _refuse_to_client(request, auth, approved, "consent_required")
    return await _render_consent(request, auth, client if registered else None, browser)


async def _silent_reason(
    request: web.Request, auth: AuthorizationRequest, subject: str | None
) -> str | None:
    """Why this request may pass without asking, or None to ask."""
    config = request[SETTINGS].config
    if auth.opaque or "consent" in auth.prompt:
        return None
    if auth.redirect_uri in config.consent.preapproved_redirect_uris:
        return "preapproved"
    if config.consent.mode != "remember" or subject is None:
        return None
    if request.headers.get("Sec-Fetch-Site", "").lower() not in SILENT_FETCH_SITES:
        return None  # a cross-site or unlabelled navigation: ask (GHSA-6x8h-498w-gv8c)
    approved = await request.app[STORE].is_approved(
        subject,
        auth.client_id,
        consent_redirect_key(auth.redirect_uri),
        auth.scopes,
        auth.resource,
    )
    return "remembered" if approved else None


async def _refuse_to_client(
    request: web.Request, auth: AuthorizationRequest, redirectable: bool, error: str
) -> web.StreamResponse:
    """An error for the client: redirected only to a registered, verified redirect URI."""
    if redirectable and not auth.opaque:
        location = error_redirect(
            auth.redirect_uri, error, state=auth.state, issuer=await _issuer(request.app)
        )
        response = web.Response(status=303, headers={"Location": location})
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    return error_response(
        request,
        400,
        error,
        "This sign-in needs your consent, but the request asked not to show any page.",
    )


async def _render_consent(
    request: web.Request,
    auth: AuthorizationRequest,
    client: ClientRecord | None,
    browser: Browser,
) -> web.StreamResponse:
    """Store the validated request server-side and show the consent page for it."""
    app = request.app
    config = request[SETTINGS].config
    crypto = app[COOKIE_CRYPTO]
    now = app[CLOCK]()
    subject = browser.ensure()
    view = build_view(
        auth,
        client,
        scope_descriptions=dict(config.consent.scope_descriptions),
        show_logos=config.consent.show_logos,
        remember_mode=config.consent.mode == "remember",
    )
    pending = PendingConsent.of(
        auth.parameters,
        redirectable=client is not None and not auth.opaque,
        remember_allowed=view.offer_remember,
    ).to_json()
    if len(pending) > MAX_PENDING_PAYLOAD:
        return error_response(
            request,
            413,
            "request_too_large",
            "This sign-in request is too large for a consent page. Ask the application's "
            "developer to send a shorter request.",
        )
    pending_id = crypto.new_pending_id(now)
    ttl = int(config.consent.pending_ttl)
    try:
        await app[STORE].put_pending(
            pending_id,
            subject,
            pending,
            int(now) + ttl,
            max_per_subject=config.consent.max_pending_per_browser,
            source=address_group(request[CLIENT_IP]),
            max_per_source=config.consent.max_pending_per_address,
            max_total=config.consent.max_pending,
        )
    except PendingFull:
        audit_event(request, "consent_unavailable", "too many consent pages open")
        response = error_response(
            request,
            503,
            "temporarily_unavailable",
            "Too many sign-ins are waiting for an answer right now. Try again in a minute.",
            title="Try again shortly",
        )
        response.headers["Retry-After"] = "60"
        return response
    csrf = crypto.csrf_token(pending_id, subject)
    response = render_page(
        request,
        "consent.html",
        csp=CSP_WITH_REMOTE_IMAGES if view.logo_url else CSP,
        view=view,
        pending_id=pending_id,
        csrf_token=csrf,
        action=f"{config.server.prefix}/consent",
        remember_days=_duration_text(config.consent.remember_for),
    )
    for header in browser.cookies_to_set():
        response.headers.add("Set-Cookie", header)
    names = crypto.names
    response.headers.add(
        "Set-Cookie",
        set_cookie_header(
            names.pending(pending_id),
            csrf,
            max_age=ttl,
            same_site="Strict",
            secure=config.secure_cookies,
        ),
    )
    # Keep at most N consent pages per browser: the oldest (ids sort by time) go first.
    open_pages = sorted(n for n in request.cookies if n.startswith(names.pending_prefix))
    for name in open_pages[: max(len(open_pages) - config.consent.max_pending_per_browser + 1, 0)]:
        response.headers.add(
            "Set-Cookie", set_cookie_header(name, "", max_age=0, secure=config.secure_cookies)
        )
    audit_event(
        request,
        "consent_asked",
        "consent page shown",
        client_id=auth.client_id,
        redirect_uri=auth.redirect_uri,
        verified=client is not None,
        subject=subject,
        pending=pending_id,
    )
    return response


# --- relaying an approved request and binding the flow -------------------------------------


async def forward_authorization(
    request: web.Request,
    parameters: Parameters,
    browser: Browser,
    *,
    after_post: bool,
    audit: tuple[str, str, dict[str, Any]],
    extra_cookies: tuple[str, ...] = (),
) -> web.StreamResponse:
    """Send exactly the validated request upstream and bind the flow it starts.

    The query is re-encoded from the parsed parameters: the upstream receives the
    request the gate checked, not the client's spelling of it. ``audit`` is the
    event, message and fields of the one audit line this decision gets.
    """
    config = request[SETTINGS].config
    target = f"{config.upstream.authorize_path}?{encode_parameters(parameters)}"
    headers = upstream_headers(request)
    for name in ("Content-Type", "Content-Length", "Origin"):
        headers.popall(name, None)
    event, message, fields = audit
    try:
        async with UpstreamExchange(
            request, target, method="GET", forward_body=False, headers=headers
        ) as upstream:
            out = response_headers(request, upstream)
            status = upstream.status
            location = out.get("Location")
            bound = False
            if 300 <= status < 400 and location:
                if after_post:
                    status = 303  # RFC 9700 §4.12: never let the browser re-POST the form
                bound = _bind_flow(request, out, location, browser)
            for header in (*browser.cookies_to_set(), *extra_cookies):
                out.add("Set-Cookie", header)
            if after_post:
                out["Cache-Control"] = "no-store"
            audit_event(
                request, event, message, **fields, upstream_status=upstream.status, bound=bound
            )
            return await stream_response(request, upstream, out, status=status)
    except UpstreamFailure as exc:
        audit_event(request, event, message, **fields, upstream_status=exc.status, bound=False)
        return error_response(request, exc.status, "upstream_error", exc.reason + ".")
    except RequestTooLarge:  # pragma: no cover - no body is forwarded here
        return error_response(request, 413, "request_too_large", "The request is too large.")


def _bind_flow(
    request: web.Request, out: CIMultiDict[str], location: str, browser: Browser
) -> bool:
    """Bind the upstream's redirect to another origin carrying ``state`` to this browser.

    Only a cookie is set: a MAC of the state, the browser's subject and the time.
    The callback checks it and marks it used (``callback.py``), so the hot path of
    a remembered approval writes nothing to the store. The browser keeps at most
    ``max_flows_per_browser`` of them; the oldest go first.
    """
    app = request.app
    config = request[SETTINGS].config
    try:
        absolute = urllib.parse.urljoin(config.server.public_url + "/", location)
        if _origin_of(absolute) == _origin_of(config.server.public_url):
            return False  # not a hand-off to the IdP
        query = split_url(absolute).query
    except ValueError:  # BadURL included
        # An upstream Location nobody can parse: no binding, so its callback (if the
        # browser ever gets there) is refused. Fails closed, never a 500.
        return False
    states = [v for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k == "state"]
    if len(states) != 1 or not states[0]:
        return False
    crypto = app[COOKIE_CRYPTO]
    binding = crypto.binding_for(states[0], browser.ensure(), int(app[CLOCK]()))
    out.add(
        "Set-Cookie",
        set_cookie_header(
            binding.cookie_name,
            binding.cookie_value,
            max_age=int(config.consent.binding_ttl),
            secure=config.secure_cookies,
        ),
    )
    limit = config.consent.max_flows_per_browser
    prefix = crypto.names.binding_prefix
    held = sorted(
        (value.split(".", 1)[0].zfill(12), name)
        for name, value in request.cookies.items()
        if name.startswith(prefix) and name != binding.cookie_name
    )
    for _, name in held[: max(len(held) - limit + 1, 0)]:
        out.add("Set-Cookie", set_cookie_header(name, "", max_age=0, secure=config.secure_cookies))
    return True


# --- the consent answer ---------------------------------------------------------------------


def _from_own_page(request: web.Request) -> bool:
    """Whether a POST came from the gate's own page, by Fetch Metadata or Origin.

    ``Sec-Fetch-Site: same-origin`` is proof. Without it, an ``Origin`` equal to the
    public origin is. The consent page's ``Referrer-Policy: no-referrer`` makes
    browsers send ``Origin: null`` on its form, so ``null`` is not a mismatch when
    Fetch Metadata vouches for the request, and not proof when it does not: when
    the gate cannot tell, it refuses.
    """
    public = request[SETTINGS].config.server.public_url
    fetch_site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if origin is not None and origin not in ("null", public):
        return False
    if fetch_site is not None:
        return fetch_site == "same-origin"
    return origin == public


async def consent_answer(request: web.Request) -> web.StreamResponse:
    """POST {prefix}/consent: approve or deny exactly the request that was shown."""
    app = request.app
    config = request[SETTINGS].config
    crypto = app[COOKIE_CRYPTO]
    store = app[STORE]
    if not _from_own_page(request):
        origin = request.headers.get("Origin")
        audit_event(
            request, "answer_refused", "consent answer from another site", origin=origin or ""
        )
        return error_response(
            request, 403, "cross_site", "This answer did not come from the consent page."
        )
    try:
        form = dict(parse_parameters(await _read_form(request)))
    except OAuthRequestError as exc:
        return error_response(request, 400, exc.code, exc.description)
    except FormTooLarge:
        return error_response(request, 413, "request_too_large", "The form is too large.")
    pending_id = form.get("pending", "")
    token = form.get("csrf", "")
    decision = form.get("decision", "")
    if decision not in ("approve", "deny") or not pending_id.isalnum() or len(pending_id) > 64:
        return error_response(request, 400, "invalid_request", "The answer is incomplete.")

    browser = Browser(request)
    stale = (
        "This consent page is no longer valid in this browser (it expired, was already "
        "answered, or was opened in another browser). Start the sign-in again."
    )
    if browser.subject is None:
        audit_event(request, "answer_refused", "consent answer without browser cookie")
        return error_response(request, 403, "invalid_session", stale)
    expected = crypto.csrf_token(pending_id, browser.subject)
    cookie = request.cookies.get(crypto.names.pending(pending_id), "")
    if not (same_token(token, expected) and same_token(cookie, expected)):
        audit_event(
            request, "answer_refused", "consent answer with a bad CSRF token", pending=pending_id
        )
        return error_response(request, 403, "invalid_csrf", stale)
    row = await store.get_pending(pending_id)
    shown: PendingConsent | None = None
    auth: AuthorizationRequest | None = None
    if row is not None and row.subject == browser.subject:
        try:
            shown = PendingConsent.from_json(row.payload)
            auth = parse_authorization_request(
                parse_parameters(shown.query),
                allow_request_uri=config.consent.allow_request_uri,
                allow_request_object=config.consent.allow_request_object,
            )
        except (BadPending, OAuthRequestError):
            shown = auth = None
    if row is None or shown is None or auth is None:
        reason = "absent" if row is None else "foreign or unreadable"
        audit_event(
            request,
            "answer_refused",
            "consent answer for an unusable pending request",
            pending=pending_id,
            reason=reason,
        )
        return error_response(request, 403, "invalid_request", stale)
    if await store.take_pending(pending_id, browser.subject) is None:
        return error_response(request, 403, "invalid_request", stale)
    clear = set_cookie_header(
        crypto.names.pending(pending_id),
        "",
        max_age=0,
        same_site="Strict",
        secure=config.secure_cookies,
    )
    fields = {
        "client_id": auth.client_id,
        "redirect_uri": auth.redirect_uri,
        "subject": browser.subject,
        "pending": pending_id,
    }
    if decision == "deny":
        audit_event(request, "consent_denied", "consent denied", **fields)
        if shown.redirectable and auth.redirect_uri:
            location = error_redirect(
                auth.redirect_uri,
                "access_denied",
                state=auth.state,
                issuer=await _issuer(app),
            )
            response = web.Response(status=303, headers={"Location": location})
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"
        else:
            response = render_page(request, "denied.html")
        response.headers.add("Set-Cookie", clear)
        return response

    remember = form.get("remember") == "yes" and shown.remember_allowed
    if remember:
        await asyncio.shield(
            store.record(
                browser.subject,
                auth.client_id,
                consent_redirect_key(auth.redirect_uri),
                auth.scopes,
                auth.resource,
                ttl=config.consent.remember_for,
            )
        )
    return await forward_authorization(
        request,
        auth.parameters,
        browser,
        after_post=True,
        audit=("consent_approved", "consent approved", {**fields, "remembered": remember}),
        extra_cookies=(clear,),
    )
