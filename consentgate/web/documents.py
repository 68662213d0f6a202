"""Clients named by a URL: their metadata document, checked before anything is decided.

An MCP client may use an https URL as its client_id and never register (MCP
2025-11-25, "Client ID Metadata Documents"; docs/clients.md). For such a request the
gate fetches the document at that URL (:class:`consentgate.clients.fetcher.DocumentFetcher`,
opened with the app) and lets the request go on only when the document lists its
redirect URI (exactly, or a loopback URI on another port: RFC 8252 §7.3). Until then
nothing is relayed, nothing is remembered and nobody is asked:

* a client_id URL that breaks a rule (``client_id_urls.parse_client_id_url``) gets a
  page, never a redirect to the redirect URI it names (RFC 6749 §4.1.2.1): nothing
  about that URI has been checked;
* a host the operator refuses (``[clients] blocked_domains`` / ``allowed_domains``), or
  ``fetch_documents = false``, gets a page saying this service does not accept the
  application (403); the host is never contacted;
* a fetch that fails gets the failure's sentence (the gate's own words, never the
  host's): 502 for what the document host did, 503 with ``Retry-After`` when the
  gate is out of fetches for a moment (``busy``, ``rate_limited``);
* a redirect URI the document does not list is refused on a page, before any
  consent prompt: that is how CIMD stops a stranger from using a real client's
  client_id with their own redirect URI.

The same check runs again at the consent answer (a cache hit, about a microsecond),
because a document can change while the page is open and an approval must not
outlive the document's listing of its redirect URI (docs/references.md). When a
document expired and cannot be fetched again, the fetcher drops it, so a remembered
sign-in is refused here like a first one (fail closed): neither passed silently nor
asked, since without a current document nothing on a consent page could be vouched for.

Each refusal is an audit event: ``client_refused`` (``reason``: ``bad_client_id``,
``disabled``, ``blocked_domain``, ``redirect_uri_not_listed``) or
``client_document_failed`` (``reason``: the fetch's, ``clients.fetch_results``), which
the metrics count by reason.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from consentgate.audit.client_events import (
    ClientDocumentFailed,
    ClientRefusal,
    ClientRefused,
    Where,
)
from consentgate.clients.client_id_urls import BadClientIdURL, ClientIdURL, parse_client_id_url
from consentgate.clients.fetch_results import TRANSIENT, FetchFailed
from consentgate.clients.fetcher import Admission, DocumentFetcher
from consentgate.clients.metadata_documents import ClientMetadataDocument, redirect_uri_listed
from consentgate.core.oauth.authorization_requests import AuthorizationRequest
from consentgate.core.oauth.oauth_errors import InvalidRequest, TemporarilyUnavailable
from consentgate.core.startup_errors import StartupError
from consentgate.web.appkeys import CLOCK, DOCUMENT_FETCHER, LIVE_SETTINGS, SETTINGS
from consentgate.web.audit_emit import audit_event, request_id
from consentgate.web.rendering.pages import error_response

#: Why a URL client was refused without a fetch failing (the ``client_refused`` event).
CLIENT_REFUSALS: Final[tuple[ClientRefusal, ...]] = (
    "bad_client_id",
    "disabled",
    "blocked_domain",
    "redirect_uri_not_listed",
)
#: Retry-After when every fetch slot is taken (``busy``): they end within fetch_timeout.
BUSY_RETRY_AFTER: Final = 5
NOT_LISTED: Final = (
    "This sign-in would send its result to an address that the application does not list "
    "in its published description, so it was stopped here and you were not sent there. "
    "If you started it, the application may be misconfigured; if you did not, someone "
    "may be trying to use its name."
)


@dataclass(frozen=True)
class ListedClient:
    """A URL client whose current document lists the request's redirect URI."""

    client: ClientIdURL
    document: ClientMetadataDocument


async def documents_ctx(app: web.Application) -> AsyncIterator[None]:
    """The process's document fetcher, opened when the app starts and closed (its
    running fetches cancelled) when it stops; a ``fetch_ca_file`` that cannot be loaded
    stops the start with a line naming the key."""
    config = app[LIVE_SETTINGS].current.config
    try:
        fetcher = DocumentFetcher.from_config(config.clients, clock=app[CLOCK])
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    app[DOCUMENT_FETCHER] = fetcher
    try:
        yield
    finally:
        await fetcher.close()


def _refused(
    request: web.Request,
    auth: AuthorizationRequest,
    where: Where,
    reason: ClientRefusal,
    *,
    status: int,
    message: str,
    detail: str = "",
    title: str,
) -> web.Response:
    audit_event(
        request,
        ClientRefused(
            request_id=request_id(request),
            reason=reason,
            at=where,
            client_id=auth.client_id,
            redirect_uri=auth.redirect_uri,
            detail=detail,
        ),
    )
    code = InvalidRequest.code if status == 400 else "client_not_accepted"
    return error_response(request, status, code, message, title=title)


def _fetch_failed(
    request: web.Request, auth: AuthorizationRequest, where: Where, failed: FetchFailed
) -> web.Response:
    if failed.reason in ("disabled", "blocked_domain"):
        return _refused(
            request,
            auth,
            where,
            failed.reason,
            status=403,
            message=failed.message,
            detail=failed.detail,
            title="This service does not accept this application",
        )
    audit_event(
        request,
        ClientDocumentFailed(
            request_id=request_id(request),
            reason=failed.reason,
            at=where,
            client_id=auth.client_id,
            detail=failed.detail,
            cached=failed.cached,
        ),
    )
    if failed.reason in TRANSIENT:
        response = error_response(
            request,
            TemporarilyUnavailable.status,
            TemporarilyUnavailable.code,
            f"{failed.message} Nothing was sent on.",
            title="Try again shortly",
        )
        wait = BUSY_RETRY_AFTER
        if failed.retry_at is not None:
            wait = max(1, math.ceil(failed.retry_at - request.app[CLOCK]()))
        response.headers["Retry-After"] = str(wait)
        return response
    return error_response(
        request,
        502,
        "client_document_unavailable",
        f"{failed.message} Nothing was sent on.",
        title="This application's description could not be read",
    )


async def listed_client(
    request: web.Request, auth: AuthorizationRequest, where: Where
) -> ListedClient | web.Response:
    """The URL client of ``auth`` with its current document, or the page refusing it
    (already audited). Call only when ``is_url_client_id(auth.client_id)``."""
    try:
        client = parse_client_id_url(auth.client_id)
    except BadClientIdURL as exc:
        return _refused(
            request,
            auth,
            where,
            "bad_client_id",
            status=400,
            message=f"{exc} The sign-in was stopped here; nothing was sent on.",
            title="This application's address cannot be used",
        )
    # The switch and the domain policy of this request's snapshot: a reload applies
    # them to the next request, cached documents included (docs/clients.md).
    admission = Admission.from_config(request[SETTINGS].config.clients)
    result = await request.app[DOCUMENT_FETCHER].get(client, admission)
    if not result.ok:
        return _fetch_failed(request, auth, where, result)
    if not redirect_uri_listed(result.document, auth.redirect_uri):
        return _refused(
            request,
            auth,
            where,
            "redirect_uri_not_listed",
            status=400,
            message=NOT_LISTED,
            title="This sign-in's destination is not the application's",
        )
    return ListedClient(client, result.document)
