"""The form of one of the gate's own pages, posted back to it: the consent answer and
the approvals page read theirs here.

Two checks come first, in this order, and a refusal changes nothing:

* the POST must come from the gate's own page (Fetch Metadata, else Origin:
  :func:`~consentgate.web.consent_flow.browser.from_own_page`); when the gate cannot tell, it
  refuses, and the refusal is audited as ``refused_event``;
* the body is an urlencoded form of bounded size, each field once (RFC 6749 §3.1's
  rule, as for OAuth requests): 400 or 413 otherwise.
"""

from __future__ import annotations

from aiohttp import web

from consentgate.audit.refusals import AnswerRefused, ApprovalsRefused
from consentgate.core.oauth.authorization_requests import parse_parameters
from consentgate.core.oauth.oauth_errors import OAuthError
from consentgate.web.appkeys import SETTINGS
from consentgate.web.audit_emit import audit_event, request_id
from consentgate.web.consent_flow.browser import from_own_page
from consentgate.web.guards.bodies import FormTooLarge, read_form
from consentgate.web.rendering.pages import error_response


async def own_page_form(
    request: web.Request,
    *,
    refused_event: type[AnswerRefused | ApprovalsRefused],
    refusal: str,
) -> dict[str, str] | web.Response:
    """The posted fields, or the error page to answer. ``refused_event`` is the audit
    event of a post from another site, ``refusal`` what its error page says."""
    if not from_own_page(request):
        origin = request.headers.get("Origin")
        refused = refused_event(
            request_id=request_id(request), refusal="cross_site", origin=origin or ""
        )
        audit_event(request, refused)
        return error_response(request, 403, "cross_site", refusal)
    try:
        timeout = request[SETTINGS].config.server.body_timeout
        return dict(parse_parameters(await read_form(request, timeout)))
    except OAuthError as exc:
        return error_response(request, 400, exc.code, exc.description)
    except FormTooLarge:
        return error_response(request, 413, "request_too_large", "The form is too large.")
