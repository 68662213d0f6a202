"""The self-service page: a person sees and revokes the approvals of their own browser.

MCP 2025-11-25 (security best practices, confused deputy) asks proxies to keep "a
registry of approved clients per user"; a registry only the operator can read
leaves a person who approved the wrong client no way out. Hydra and Keycloak give
each person an account page listing the consents they granted, each revocable;
``GET {prefix}/approvals`` is that page for the gate.

* **Whose approvals**: those bound to this browser's subject (``web/consent_flow/browser.py``),
  nothing else. A browser without the identity cookie has none and sees an empty
  list; visiting the page does not issue one (nothing to protect, nothing to bind).
  Revocation goes through ``store.revoke(id=X, owner=subject)``, so an id copied
  from another browser's page revokes nothing.
* **CSRF**: each form carries a MAC of the subject under its own HKDF purpose key
  (``CookieCrypto.approvals_token``), and the POST must come from the gate's own
  page (Fetch Metadata, else Origin: ``browser.from_own_page``, as the consent
  answer). The token is the same on every render, so a reload never invalidates
  a form still on screen (docs/references.md, the FastMCP lessons). Refusals are audited as
  ``approvals_refused``; a revocation is audited by the store (``consents_revoked``,
  ``by="self"``).
* **Revoke all asks first**: the list's "Revoke all" (a secondary button) posts
  ``action=revoke_all`` without ``confirm=yes`` and gets a confirmation page
  (``approvals_confirm.html``, the count and what it means); only its form, which
  carries ``confirm=yes`` and the same CSRF token, revokes. No script needed.
* **After a POST, 303** back to the page (RFC 9700 §4.12), so a reload does not
  post the form again.
* **Headers**: the gate's page headers (``web/rendering/pages.py``): no framing (RFC 9700
  §4.16: a framed Revoke button could be clickjacked), ``Referrer-Policy:
  no-referrer``, ``Cache-Control: no-store``.
* A store that cannot answer raises ``StoreUnavailable``; the request middleware
  answers the gate's 503 page, as for the consent flow.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from consentgate.audit.refusals import ApprovalsRefused
from consentgate.clients.client_id_urls import is_url_client_id
from consentgate.clients.kinds import client_domain
from consentgate.core.clientinfo import ApprovalView, build_approval_view
from consentgate.core.identity.person import Person
from consentgate.core.oauth.oauth_errors import InvalidRequest
from consentgate.core.signed.cookies import same_token
from consentgate.core.signed.records import ClientRecord
from consentgate.web.appkeys import CLOCK, COOKIE_CRYPTO, REQUEST_ID, SETTINGS, STORE
from consentgate.web.audit_emit import audit_event
from consentgate.web.consent_flow.browser import Browser
from consentgate.web.consent_flow.forms import own_page_form
from consentgate.web.identity.session import current_person, signed_out_cookie
from consentgate.web.rendering.pages import (
    error_response,
    page_translator,
    render_page,
    secure,
)

#: Characters of a record id (``store.parts.consents.new_record_id``: base64url).
_ID_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_MAX_ID_LENGTH: Final = 64

_STALE: Final = (
    "This change did not come from your approvals page in this browser. "
    "Open the page again and retry."
)


async def approvals_page(request: web.Request) -> web.StreamResponse:
    """GET {prefix}/approvals: this browser's active approvals, each with Revoke."""
    config = request[SETTINGS].config
    browser = Browser(request)
    person = current_person(request, browser)
    views: list[ApprovalView] = []
    token = ""
    if browser.subject is not None:
        store = request.app[STORE]
        records = []
        for subject in _owners(browser.subject, person):
            records += await store.list(
                subject=subject, include_revoked=False, include_expired=False
            )
        records.sort(key=lambda record: record.granted_at, reverse=True)
        clients: dict[str, ClientRecord | None] = {}
        for record in records:
            # A client named by a URL has no registration to look up (never fetched
            # here either: the page shows the domain its approval was checked against).
            if record.client_id not in clients and not is_url_client_id(record.client_id):
                clients[record.client_id] = await store.get_client(record.client_id)
        now = request.app[CLOCK]()
        descriptions = dict(config.consent.scope_descriptions)
        tr = page_translator(request)
        views = [
            build_approval_view(
                record,
                clients.get(record.client_id),
                scope_descriptions=descriptions,
                now=now,
                verified_domain=client_domain(record.client_id),
                tr=tr,
            )
            for record in records
        ]
        token = request.app[COOKIE_CRYPTO].approvals_token(browser.subject)
    return render_page(
        request,
        "approvals.html",
        approvals=views,
        csrf_token=token,
        action=f"{config.server.prefix}/approvals",
        signed_in_as=person.display if person is not None else "",
    )


def _owners(browser_subject: str, person: Person | None) -> tuple[str, ...]:
    """Whose approvals this page shows and revokes: the signed-in person's, from every
    browser where they signed in ([identity]), and this browser's own (made before
    identity was on, or without a sign-in)."""
    return (browser_subject,) if person is None else (person.subject, browser_subject)


async def approvals_answer(request: web.Request) -> web.StreamResponse:
    """POST {prefix}/approvals: revoke one of this browser's approvals, or all of them."""
    config = request[SETTINGS].config
    form = await own_page_form(
        request,
        refused_event=ApprovalsRefused,
        refusal="This change did not come from the approvals page.",
    )
    if isinstance(form, web.Response):
        return form
    action = form.get("action", "")
    record_id = form.get("id", "")
    if action not in ("revoke", "revoke_all", "sign_out") or (
        action == "revoke"
        and not (0 < len(record_id) <= _MAX_ID_LENGTH and set(record_id) <= _ID_CHARS)
    ):
        return error_response(
            request,
            InvalidRequest.status,
            InvalidRequest.code,
            "The form is incomplete.",
            page="stale_approvals",
        )
    browser = Browser(request)
    if browser.subject is None:
        audit_event(request, ApprovalsRefused(request_id=request[REQUEST_ID], refusal="no_browser"))
        return error_response(request, 403, "invalid_session", _STALE, page="stale_approvals")
    expected = request.app[COOKIE_CRYPTO].approvals_token(browser.subject)
    if not same_token(form.get("csrf", ""), expected):
        audit_event(
            request,
            ApprovalsRefused(
                request_id=request[REQUEST_ID], refusal="csrf", subject=browser.subject
            ),
        )
        return error_response(request, 403, "invalid_csrf", _STALE, page="stale_approvals")
    store = request.app[STORE]
    owners = _owners(browser.subject, current_person(request, browser))
    # Shielded: a browser that goes away must not cancel a revocation half way.
    request_id = request[REQUEST_ID]
    response = web.Response(status=303, headers={"Location": f"{config.server.prefix}/approvals"})
    if action == "sign_out":
        response.headers.add("Set-Cookie", signed_out_cookie(request))
    elif action == "revoke":
        for owner in owners:
            await asyncio.shield(
                store.revoke(id=record_id, owner=owner, by="self", request_id=request_id)
            )
    elif form.get("confirm") != "yes":
        return await _confirm_revoke_all(request, owners, expected)
    else:
        for owner in owners:
            await asyncio.shield(store.revoke(subject=owner, by="self", request_id=request_id))
    secure(response)
    return response


async def _confirm_revoke_all(
    request: web.Request, owners: tuple[str, ...], token: str
) -> web.Response:
    """The confirmation page of "Revoke all": what it revokes, and the one form that
    does it."""
    count = 0
    for owner in owners:
        count += len(
            await request.app[STORE].list(
                subject=owner, include_revoked=False, include_expired=False
            )
        )
    return render_page(
        request,
        "approvals_confirm.html",
        count=count,
        csrf_token=token,
        action=f"{request[SETTINGS].config.server.prefix}/approvals",
    )
