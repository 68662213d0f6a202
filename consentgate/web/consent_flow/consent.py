"""The consent answer: approve or deny exactly the request that was shown.

* The form is protected by a per-render, double-submitted CSRF token bound to the
  page's id and the browser; the POST trusts nothing from the form but the page's
  seal (MACed by the gate, bound to this browser, expiring:
  :mod:`consentgate.core.signed.pending`), the token and the choice (Cloudflare's early
  demos trusted unauthenticated hidden fields). A second render does not
  invalidate the first (FastMCP #4814).
* It must come from the gate's own page (Fetch Metadata, else Origin); when the
  gate cannot tell, it refuses.
* For a client named by a URL, its current metadata document must still list the
  redirect URI (:mod:`consentgate.web.documents`): a document can change while the
  page is open, and an approval must not outlive its listing; when the gate cannot
  tell, it refuses.
* The answer marks the page used atomically in the store, so one page is answered
  once whichever gate receives it; the approval is recorded before the request is
  relayed.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from consentgate.audit.decisions import ConsentApproved, ConsentDenied
from consentgate.audit.refusals import AnswerRefused
from consentgate.clients.client_id_urls import is_url_client_id
from consentgate.clients.kinds import ClientDescription, describe
from consentgate.core.oauth.authorization_requests import (
    parse_authorization_request,
    parse_parameters,
)
from consentgate.core.oauth.oauth_errors import AccessDenied, InvalidRequest, OAuthError
from consentgate.core.signed.cookies import same_token, set_cookie_header
from consentgate.core.signed.pending import BadPending
from consentgate.web.appkeys import CLOCK, COOKIE_CRYPTO, SETTINGS, STORE
from consentgate.web.audit_emit import audit_event, request_id
from consentgate.web.consent_flow.browser import Browser
from consentgate.web.consent_flow.client_redirects import redirect_error
from consentgate.web.consent_flow.flow import forward_authorization
from consentgate.web.consent_flow.forms import own_page_form
from consentgate.web.documents import listed_client
from consentgate.web.identity.session import current_person, page_owner
from consentgate.web.rendering.pages import error_response, keep_ui_locales, render_page


async def consent_answer(request: web.Request) -> web.StreamResponse:
    """POST {prefix}/consent: approve or deny exactly the request that was shown."""
    app = request.app
    config = request[SETTINGS].config
    crypto = app[COOKIE_CRYPTO]
    store = app[STORE]
    form = await own_page_form(
        request,
        refused_event=AnswerRefused,
        refusal="This answer did not come from the consent page.",
    )
    if isinstance(form, web.Response):
        return form
    pending_id = form.get("pending", "")
    token = form.get("csrf", "")
    decision = form.get("decision", "")
    if decision not in ("approve", "deny") or not pending_id.isalnum() or len(pending_id) > 64:
        return error_response(
            request,
            InvalidRequest.status,
            InvalidRequest.code,
            "The answer is incomplete.",
            page="stale_page",
        )

    browser = Browser(request)
    stale = (
        "This consent page is no longer valid in this browser (it expired, was already "
        "answered, or was opened in another browser). Start the sign-in again."
    )
    if browser.subject is None:
        audit_event(request, AnswerRefused(request_id=request_id(request), refusal="no_browser"))
        return error_response(request, 403, "invalid_session", stale)
    # With [identity], the approval is the signed-in person's; a session that ended
    # while the page was open leaves nobody to record it for: the page is stale.
    person = current_person(request, browser)
    if config.identity.enabled and person is None:
        audit_event(request, AnswerRefused(request_id=request_id(request), refusal="no_browser"))
        return error_response(request, 403, "invalid_session", stale)
    approver = person.subject if person is not None else browser.subject
    owner = page_owner(browser.subject, person)
    expected = crypto.csrf_token(pending_id, owner)
    cookie = request.cookies.get(crypto.names.pending(pending_id), "")
    if not (same_token(token, expected) and same_token(cookie, expected)):
        audit_event(
            request,
            AnswerRefused(request_id=request_id(request), refusal="csrf", pending=pending_id),
        )
        return error_response(request, 403, "invalid_csrf", stale)
    try:
        page = crypto.open_pending(form.get("sealed", ""), owner, app[CLOCK]())
        if page.id != pending_id:
            raise BadPending("sealed for another page")
        shown = page.consent
        shown_parameters = parse_parameters(shown.query)
        # The answer's pages speak the consent page's language: the sealed request's
        # ui_locales, then Accept-Language, among the enabled languages.
        keep_ui_locales(request, dict(shown_parameters).get("ui_locales"))
        auth = parse_authorization_request(
            shown_parameters,
            allow_request_uri=config.consent.allow_request_uri,
            allow_request_object=config.consent.allow_request_object,
        )
    except (BadPending, OAuthError) as exc:
        audit_event(
            request,
            AnswerRefused(
                request_id=request_id(request),
                refusal="expired_page",
                pending=pending_id,
                reason=str(exc) if isinstance(exc, BadPending) else "unreadable",
            ),
        )
        return error_response(request, 403, InvalidRequest.code, stale, page="stale_page")
    if is_url_client_id(auth.client_id):
        # The document may have changed since the page was shown: nothing is approved,
        # remembered or relayed (nor an error redirected) unless it still lists the
        # redirect URI (a cache hit, about a microsecond). The page stays unused.
        checked = await listed_client(request, auth, "answer")
        if isinstance(checked, web.Response):
            return checked
        description = ClientDescription("metadata_document", checked.client.host)
    else:
        registered = await store.get_client(auth.client_id) is not None
        description = describe(auth.client_id, registered=registered)
    remember = decision == "approve" and form.get("remember") == "yes" and shown.remember_allowed
    if remember:
        # The page is used up and the approval remembered in one durable commit: a
        # store failing in between leaves the page answerable once it is back.
        question = auth.question(approver)
        recorded = await asyncio.shield(
            store.approve_page(
                page.id,
                page.expires_at,
                question.subject,
                client_id=question.client_id,
                redirect_uri=question.redirect_key,
                scopes=question.scopes,
                resource=question.resource,
                ttl=config.consent.remember_for,
            )
        )
        used = recorded is not None
    else:
        used = await store.use_page(page.id, page.expires_at)
    if not used:
        audit_event(
            request,
            AnswerRefused(
                request_id=request_id(request),
                refusal="expired_page",
                pending=pending_id,
                reason="already answered",
            ),
        )
        return error_response(request, 403, InvalidRequest.code, stale, page="stale_page")
    clear = set_cookie_header(
        crypto.names.pending(pending_id),
        "",
        max_age=0,
        same_site="Strict",
        secure=config.secure_cookies,
    )
    subject = approver
    scopes = " ".join(sorted(auth.scopes))
    if decision == "deny":
        denied = ConsentDenied(
            request_id=request_id(request),
            client_id=auth.client_id,
            redirect_uri=auth.redirect_uri,
            scopes=scopes,
            subject=subject,
            pending=pending_id,
            client_kind=description.kind,
            client_domain=description.domain,
        )
        audit_event(request, denied)
        redirected = (
            await redirect_error(request, auth, AccessDenied)
            if shown.redirectable and auth.redirect_uri
            else None
        )
        response = render_page(request, "denied.html") if redirected is None else redirected
        response.headers.add("Set-Cookie", clear)
        return response

    return await forward_authorization(
        request,
        auth.parameters,
        browser,
        after_post=True,
        audit=lambda status, bound: ConsentApproved(
            request_id=request_id(request),
            client_id=auth.client_id,
            redirect_uri=auth.redirect_uri,
            scopes=scopes,
            subject=subject,
            pending=pending_id,
            client_kind=description.kind,
            client_domain=description.domain,
            remembered=remember,
            upstream_status=status,
            bound=bound,
        ),
        extra_cookies=(clear,),
    )
