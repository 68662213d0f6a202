"""The authorization endpoint: relay a request only with this browser's consent.

Its promises, and the advisories they come from:

* No authorization request for a client this browser has not approved reaches
  the upstream (MCP 2025-11-25, "Confused Deputy Problem": proxies with a static
  client id MUST obtain consent for each dynamically registered client). Whether
  to ask is decided in :mod:`consentgate.core.oauth.decision`.
* The request is parsed strictly and sealed into the page (a MACed, expiring
  value bound to this browser, :mod:`consentgate.core.signed.pending`); nothing is stored
  until it is answered, so strangers rendering pages spend no budget that others
  need. The answer (:mod:`consentgate.web.consent_flow.consent`) trusts only that seal, the CSRF
  token and the choice, never an unauthenticated hidden field.
* Errors are redirected only to a redirect URI the client registered and the gate
  saw registering (:mod:`consentgate.web.consent_flow.client_redirects`), or that the current
  metadata document of a client named by a URL lists; otherwise the person gets a
  page (RFC 6749 §4.1.2.1, RFC 9700 §4.11.2).
* A client named by a URL (Client ID Metadata Documents, MCP 2025-11-25) is checked
  first (:mod:`consentgate.web.documents`): its document fetched or taken from the
  cache, its redirect URI listed there, or a page and nothing upstream. Only then is
  consent decided, as for a registered client, the document standing in for the
  registration: so a remembered approval passes silently only while the current
  document still lists the redirect URI.
"""

from __future__ import annotations

import functools
import time

from aiohttp import web

from consentgate.audit.decisions import ConsentAsked, ConsentSilent, SilentReason
from consentgate.audit.refusals import AuthorizeNotNavigation, RequestRefused, program_answer
from consentgate.clients.client_id_urls import is_url_client_id
from consentgate.clients.kinds import ClientDescription, describe
from consentgate.clients.metadata_documents import localhost_only
from consentgate.core.clientinfo import ClientKind, ClientMetadata, build_view
from consentgate.core.identity.person import Person
from consentgate.core.oauth.authorization_requests import (
    AuthorizationRequest,
    parse_authorization_request,
    parse_parameters,
    redirect_uri_matches,
)
from consentgate.core.oauth.decision import FirstLook, first_look
from consentgate.core.oauth.navigation import is_navigation
from consentgate.core.oauth.oauth_errors import (
    ConsentRequired,
    InteractionRequired,
    InvalidClient,
    InvalidRequest,
    OAuthError,
    TemporarilyUnavailable,
)
from consentgate.core.oauth.paths import RoutedPath
from consentgate.core.signed.cookies import set_cookie_header
from consentgate.core.signed.pending import PendingConsent
from consentgate.core.signed.records import MAX_PENDING_PAYLOAD, ClientRecord
from consentgate.web.appkeys import CLOCK, COOKIE_CRYPTO, IDP_MEMORY, METRICS, SETTINGS, STORE
from consentgate.web.audit_emit import audit_event, request_id
from consentgate.web.consent_flow.browser import Browser
from consentgate.web.consent_flow.client_redirects import redirect_error
from consentgate.web.consent_flow.flow import forward_authorization
from consentgate.web.documents import ListedClient, listed_client
from consentgate.web.guards.bodies import FormTooLarge, read_form
from consentgate.web.identity.session import current_person, page_owner
from consentgate.web.identity.signin_start import start_signin
from consentgate.web.rendering.catalogs import shown_service_name
from consentgate.web.rendering.pages import (
    CSP,
    CSP_WITH_REMOTE_IMAGES,
    error_response,
    json_error,
    keep_ui_locales,
    page_translator,
    render_page,
)


def _query_of(request: web.Request) -> str:
    return request.raw_path.partition("?")[2]


def _parsed(request: web.Request, query: str, body: str = "") -> AuthorizationRequest:
    """The authorization request in ``query`` (and a POSTed ``body``); raises
    :class:`OAuthError`. Its pages, its errors too, speak the language it asks for
    (``ui_locales``, OIDC Core §3.1.2.1), kept before anything can refuse it."""
    consent = request[SETTINGS].config.consent
    parameters = parse_parameters(query, body)
    keep_ui_locales(request, next((v for k, v in parameters if k == "ui_locales"), None))
    return parse_authorization_request(
        parameters,
        allow_request_uri=consent.allow_request_uri,
        allow_request_object=consent.allow_request_object,
    )


def _bad_request(request: web.Request, error: OAuthError, *, program: bool = False) -> web.Response:
    audit_event(
        request,
        RequestRefused(request_id=request_id(request), error=error.code, reason=error.description),
    )
    if program:
        return json_error(request, error.status, error.code, error.description)
    return error_response(
        request,
        error.status,
        error.code,
        error.description,
        title="This sign-in request cannot be accepted",
    )


async def authorize(request: web.Request, routed: RoutedPath) -> web.StreamResponse:
    """Intercept an authorization request: relay it only with this browser's consent."""
    config = request[SETTINGS].config
    started = time.perf_counter()
    if request.method not in ("GET", "POST"):
        return error_response(
            request, 405, "method_not_allowed", "The authorization endpoint takes GET or POST."
        )
    program = not is_navigation(
        fetch_mode=request.headers.get("Sec-Fetch-Mode"),
        fetch_dest=request.headers.get("Sec-Fetch-Dest"),
        accept=request.headers.get("Accept"),
    )
    try:
        body = (
            await read_form(request, config.server.body_timeout) if request.method == "POST" else ""
        )
        auth = _parsed(request, _query_of(request), body)
    except OAuthError as exc:
        return _bad_request(request, exc, program=program)
    except FormTooLarge:
        return error_response(request, 413, "request_too_large", "The form is too large.")

    return await _decide(
        request,
        auth,
        program=program,
        fetch_site=request.headers.get("Sec-Fetch-Site"),
        started=started,
    )


async def resume_authorization(
    request: web.Request, query: str, *, fetch_site: str | None, person: Person
) -> web.StreamResponse:
    """Decide the authorization request that waited for the gate's sign-in
    (:mod:`consentgate.web.identity.signin_continue`), now for ``person``, judged by
    how it first arrived (``fetch_site``), never by the provider's return navigation."""
    try:
        auth = _parsed(request, query)
    except OAuthError as exc:
        return _bad_request(request, exc)
    return await _decide(
        request,
        auth,
        program=False,
        fetch_site=fetch_site,
        started=time.perf_counter(),
        person=person,
    )


async def _decide(
    request: web.Request,
    auth: AuthorizationRequest,
    *,
    program: bool,
    fetch_site: str | None,
    started: float,
    person: Person | None = None,
) -> web.StreamResponse:
    """Everything after parsing: the client, the sign-in at the gate ([identity]), the
    decision, and the relay, the page or the refusal."""
    app = request.app
    config = request[SETTINGS].config
    store = app[STORE]
    listed: ListedClient | None = None
    client: ClientMetadata | None
    if is_url_client_id(auth.client_id):
        # Its document stands in for a registration, and is checked before anything
        # is decided: a refusal here is a page, never a redirect (web/documents.py).
        checked = await listed_client(request, auth, "authorize")
        if isinstance(checked, web.Response):
            return _program_refusal(request, auth, checked) if program else checked
        listed, client, registered = checked, checked.document, True
    else:
        client = await store.get_client(auth.client_id)
        registered = client is not None and any(
            redirect_uri_matches(auth.redirect_uri, uri) for uri in client.redirect_uris
        )
    if program:
        return _answer_program(request, auth, client, registered, listed)
    if client is not None and auth.redirect_uri and not registered:
        return _bad_request(
            request,
            InvalidRequest(
                "The redirect_uri is not one this client registered; the request is refused "
                "without redirecting (RFC 6749 §4.1.2.1).",
            ),
        )

    browser = Browser(request)
    if config.identity.enabled and person is None:
        person = current_person(request, browser)
        if person is None and _needs_person(request, auth, fetch_site):
            return await start_signin(request, auth, browser, fetch_site)
    # With [identity], approvals are a person's: without one signed in (prompt=none,
    # or an operator-preapproved redirect URI) no approval counts, not even one this
    # browser made before identity was turned on.
    approver: str | None
    if person is not None:
        approver = person.subject
    else:
        approver = None if config.identity.enabled else browser.subject
    reason = await _silent_reason(request, auth, approver, fetch_site, browser.subject)
    app[METRICS].authorize_seconds.observe(time.perf_counter() - started)
    if reason is not None:
        description = _description(auth, client, listed)
        silent = functools.partial(
            ConsentSilent,
            request_id=request_id(request),
            reason=reason,
            client_id=auth.client_id,
            redirect_uri=auth.redirect_uri,
            subject=approver or "",
            client_kind=description.kind,
            client_domain=description.domain,
        )
        return await forward_authorization(
            request,
            auth.parameters,
            browser,
            after_post=False,
            audit=lambda status, bound: silent(upstream_status=status, bound=bound),
        )

    if "none" in auth.prompt:
        # OIDC Core §3.1.2.6: no UI allowed, so the answer is consent_required. But
        # registration is open, so "registered" says nothing about who owns the
        # redirect URI: an error is redirected only to a destination this browser
        # approved for this exact request; anything else gets a local page, or the
        # gate is an open redirect (RFC 9700 §4.11.2).
        approved = (
            registered and approver is not None and await store.is_approved(auth.question(approver))
        )
        return await _refuse_to_client(request, auth, approved, ConsentRequired)
    return await _render_consent(
        request,
        auth,
        client if registered else None,
        browser,
        listed=listed,
        person=person,
    )


def _needs_person(request: web.Request, auth: AuthorizationRequest, fetch_site: str | None) -> bool:
    """Whether this request waits for a sign-in at the gate: not when the operator
    preapproved its redirect URI (no person decides), and not with ``prompt=none``
    (no page may be shown: it is answered ``consent_required`` as for a browser
    without approvals, OIDC Core §3.1.2.6)."""
    if "none" in auth.prompt:
        return False
    consent = request[SETTINGS].config.consent
    look = first_look(
        auth,
        mode=consent.mode,
        preapproved_redirect_uris=consent.preapproved_redirect_uris,
        has_browser=True,
        fetch_site=fetch_site,
    )
    return look is not FirstLook.PREAPPROVED


def _description(
    auth: AuthorizationRequest, client: ClientMetadata | None, listed: ListedClient | None
) -> ClientDescription:
    """The client's kind and, for a URL client, the domain its document was fetched
    from (audit lines and the decision metrics: ``client_kind``, ``client_domain``)."""
    if listed is not None:
        return ClientDescription("metadata_document", listed.client.host)
    return describe(auth.client_id, registered=client is not None)


def _answer_program(
    request: web.Request,
    auth: AuthorizationRequest,
    client: ClientMetadata | None,
    registered: bool,
    listed: ListedClient | None,
) -> web.Response:
    """The answer to a request that is not a person's browser opening the URL
    (:mod:`consentgate.core.oauth.navigation`): JSON, never a redirect, nothing upstream.

    * A client the gate does not know: 400 ``invalid_client`` (RFC 6749 §5.2's error
      JSON; §4.1.2.1: no redirect for an invalid client), so a program checking
      whether its cached registration is stale (mcp-remote reads ``invalid_client``
      and ``unauthorized_client`` so) learns that it is and registers again, through
      the gate. (FastMCP's OAuthProxy itself says ``invalid_request`` here, which
      mcp-remote does not read as stale.)
    * A redirect URI the client did not register: 400 ``invalid_request``, as the
      page would say.
    * A known client: 400 ``interaction_required`` (OIDC Core §3.1.2.6: the server
      needs the person): a person must open the URL in a browser. mcp-remote treats
      every answer but 400/401 with ``invalid_client`` or ``unauthorized_client`` as
      "registration fine" and opens the browser; unlike the consent page this sets no
      cookie and shows no page nobody sees.
    """
    kind = _description(auth, client, listed).kind
    answer: type[OAuthError]
    if client is None:
        answer = InvalidClient
        message = (
            "The client is not known to this server; register it again (RFC 7591) "
            "and start the sign-in in a browser."
        )
    elif auth.redirect_uri and not registered:
        answer = InvalidRequest
        message = "The redirect_uri is not one this client registered."
    else:
        answer = InteractionRequired
        message = (
            "A person must open this URL in a web browser to approve this sign-in; "
            "it is not answered to programs."
        )
    _audit_program(request, auth, answer.code, kind)
    return json_error(request, answer.status, answer.code, message)


def _program_refusal(
    request: web.Request, auth: AuthorizationRequest, refused: web.Response
) -> web.Response:
    """A client named by a URL that its document does not vouch for, asked by a program:
    ``invalid_client`` as for any unknown client; a fetch that failed on the gate's or
    the document host's side stays a 5xx (with its ``Retry-After``), in JSON."""
    if refused.status < 500:
        _audit_program(request, auth, InvalidClient.code, "metadata_document")
        return json_error(
            request,
            InvalidClient.status,
            InvalidClient.code,
            "The client's metadata document does not allow this request.",
        )
    _audit_program(request, auth, TemporarilyUnavailable.code, "metadata_document")
    response = json_error(
        request,
        refused.status,
        TemporarilyUnavailable.code,
        "The client's metadata document cannot be read now.",
    )
    if "Retry-After" in refused.headers:
        response.headers["Retry-After"] = refused.headers["Retry-After"]
    return response


def _audit_program(
    request: web.Request, auth: AuthorizationRequest, answer: str, kind: ClientKind
) -> None:
    audit_event(
        request,
        AuthorizeNotNavigation(
            request_id=request_id(request),
            answer=program_answer(answer),
            client_id=auth.client_id,
            redirect_uri=auth.redirect_uri,
            client_kind=kind,
        ),
    )


async def _silent_reason(
    request: web.Request,
    auth: AuthorizationRequest,
    subject: str | None,
    fetch_site: str | None,
    browser_subject: str | None,
) -> SilentReason | None:
    """Why this request may pass without asking (see :mod:`consentgate.core.oauth.decision`),
    or None to ask. ``fetch_site`` is how the request arrived at the gate (for a request
    that waited for a sign-in, as it first arrived). With a person signed in
    (``subject`` is theirs), an approval this browser made before identity was turned
    on still counts (``browser_subject``)."""
    consent = request[SETTINGS].config.consent
    look = first_look(
        auth,
        mode=consent.mode,
        preapproved_redirect_uris=consent.preapproved_redirect_uris,
        has_browser=subject is not None,
        fetch_site=fetch_site,
    )
    if look is FirstLook.PREAPPROVED:
        return "preapproved"
    if look is FirstLook.ASK or subject is None:
        return None
    store = request.app[STORE]
    approved = await store.is_approved(auth.question(subject))
    if not approved and browser_subject is not None and browser_subject != subject:
        approved = await store.is_approved(auth.question(browser_subject))
    return "remembered" if approved else None


async def _approved_scopes(
    request: web.Request, auth: AuthorizationRequest, subject: str | None
) -> frozenset[str]:
    """The scopes this browser already approved for the request's client, redirect key
    and resource (its active records'), so a step-up page can say which are new. Only
    shown, never decided on: ``is_approved`` still needs one record covering every
    scope asked, and approving records the scopes asked."""
    remember = request[SETTINGS].config.consent.mode == "remember"
    if subject is None or not remember or not auth.scopes or auth.opaque:
        return frozenset()
    question = auth.question(subject)
    approved: set[str] = set()
    records = request.app[STORE].iter_records(
        client_id=question.client_id,
        redirect_uri=question.redirect_key,
        subject=subject,
        include_revoked=False,
        include_expired=False,
    )
    async for record in records:
        if record.resource == question.resource:
            approved.update(record.scopes)
    return frozenset(approved)


async def _refuse_to_client(
    request: web.Request,
    auth: AuthorizationRequest,
    redirectable: bool,
    error: type[OAuthError],
) -> web.StreamResponse:
    """An error for the client: redirected only to a registered, verified redirect URI,
    and only with the upstream's issuer; otherwise a local page."""
    if redirectable and not auth.opaque:
        redirected = await redirect_error(request, auth, error)
        if redirected is not None:
            return redirected
    return error_response(
        request,
        error.status,
        error.code,
        "This sign-in needs your consent, but the request asked not to show any page.",
    )


async def _render_consent(
    request: web.Request,
    auth: AuthorizationRequest,
    client: ClientMetadata | None,
    browser: Browser,
    *,
    listed: ListedClient | None = None,
    person: Person | None = None,
) -> web.StreamResponse:
    """Show the consent page for the validated request, sealed into its form.

    ``client`` is what the gate knows of the client: a registration it saw, or the
    current document of a client named by a URL (``listed``), whose host is then
    shown as the verified domain, and whose age is the first time a gate on this
    store showed it to anyone (``store.parts.first_sightings``: written once, read from
    memory after that; read here, so a silent relay or a program's request pays
    nothing; a row that does not verify counts as new: fail closed)."""
    app = request.app
    config = request[SETTINGS].config
    crypto = app[COOKIE_CRYPTO]
    now = app[CLOCK]()
    first_seen = (
        await app[STORE].sightings.first_seen(auth.client_id) if listed is not None else None
    )
    approved = await _approved_scopes(
        request, auth, person.subject if person is not None else browser.subject
    )
    subject = browser.ensure()
    learned = app[IDP_MEMORY].known(config.upstream.url)
    tr = page_translator(request)
    view = build_view(
        auth,
        client,
        scope_descriptions=dict(config.consent.scope_descriptions),
        show_logos=config.consent.show_logos,
        remember_mode=config.consent.mode == "remember",
        verified_domain=listed.client.host if listed is not None else None,
        localhost_only=listed is not None and localhost_only(listed.document),
        registered_at=client.registered_at if isinstance(client, ClientRecord) else None,
        first_seen_at=(now if first_seen is None else first_seen) if listed else None,
        now=now,
        service_name=shown_service_name(config, tr),
        idp_host=config.consent.idp_host or (learned.host if learned else None),
        idp_scopes=config.consent.upstream_scopes or (learned.scopes if learned else ()),
        approved_scopes=approved,
        tr=tr,
    )
    pending = PendingConsent.of(
        auth.parameters,
        redirectable=client is not None and not auth.opaque,
        remember_allowed=view.offer_remember,
    )
    if len(pending.to_json().encode("utf-8")) > MAX_PENDING_PAYLOAD:
        return error_response(
            request,
            413,
            "request_too_large",
            "This sign-in request is too large for a consent page. Ask the application's "
            "developer to send a shorter request.",
        )
    pending_id = crypto.new_pending_id(now)
    ttl = int(config.consent.pending_ttl)
    owner = page_owner(subject, person)
    sealed = crypto.seal_pending(pending_id, owner, int(now) + ttl, pending)
    csrf = crypto.csrf_token(pending_id, owner)
    response = render_page(
        request,
        "consent.html",
        csp=CSP_WITH_REMOTE_IMAGES if view.logo_url else CSP,
        view=view,
        pending_id=pending_id,
        sealed=sealed,
        csrf_token=csrf,
        action=f"{config.server.prefix}/consent",
        remember_days=tr.duration(config.consent.remember_for),
        signed_in_as=person.display if person is not None else "",
        signout_token=crypto.approvals_token(subject) if person is not None else "",
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
    description = _description(auth, client, listed)
    audit_event(
        request,
        ConsentAsked(
            request_id=request_id(request),
            client_id=auth.client_id,
            redirect_uri=auth.redirect_uri,
            verified=client is not None,
            client_kind=description.kind,
            client_domain=description.domain,
            subject=person.subject if person is not None else subject,
            pending=pending_id,
        ),
    )
    return response
