"""The admin API's handlers: the CLI's ``consents`` operations over HTTP.

Thin on purpose: each handler parses with :mod:`consentgate.admin.api_parsing`, calls the
same :class:`~consentgate.store.ConsentStore` methods the CLI calls, and renders with
the same serialisers (:func:`~consentgate.core.signed.records.consent_listing`), so the API
and ``consentgate consents list --json`` cannot drift apart: one implementation.
Conventions from Hydra's admin API (list and revoke consent by subject, by client or
one by one; listings paged by an opaque token).

Authentication, the JSON errors and ``Cache-Control: no-store`` are the listener's
(:mod:`consentgate.admin.admin_listener`); a handler raises :class:`BadRequest` or lets
:class:`StoreUnavailable` through, and the listener answers 400 or 503.

``GET /admin/audit`` pages the hash-chained audit table (:mod:`consentgate.audit.trail`)
with the rows ``consentgate audit list --json`` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

from aiohttp import web

from consentgate.admin.api_parsing import (
    MAX_BODY_BYTES,
    BadRequest,
    ClientsQuery,
    parse_audit_query,
    parse_clients_query,
    parse_consent_query,
    parse_record_id,
    parse_revoke_body,
)
from consentgate.clients.kinds import ApprovalTally, Describer, describe
from consentgate.core.paging import Listing, decode_cursor, encode_cursor
from consentgate.core.requestids import new_request_id
from consentgate.core.signed.records import client_listing, consent_listing
from consentgate.store import ConsentStore, VerificationFailure
from consentgate.upstream.bounded_read import read_up_to
from consentgate.web.appkeys import STORE

#: Seconds ``GET /admin/audit`` waits for audit rows still queued to be written.
FLUSH_WAIT: Final = 2.0


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON answer no cache keeps (it names people's approvals)."""
    response = web.json_response(data, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _store(request: web.Request) -> ConsentStore:
    return request.app[STORE]


def describer(store: ConsentStore) -> Describer:
    """The kind and domain of each client a listing names: a URL client by its URL, any
    other by whether the store keeps its registration (verified, cached)."""

    async def is_registered(client_id: str) -> bool:
        return await store.get_client(client_id) is not None

    return Describer(is_registered)


async def list_consents(request: web.Request) -> web.Response:
    """``GET /admin/consents``: a page of verified records, filtered; ``next_cursor``."""
    query = parse_consent_query(request.rel_url.query.items())
    store = _store(request)
    subject = query.subject if query.user is None else await _one_person(store, query.user)
    if subject == "":
        return json_response({"consents": [], "next_cursor": None})
    try:
        records, next_cursor = await store.page_records(
            client_id=query.client_id,
            redirect_uri=query.redirect_uri,
            subject=subject,
            active_only=query.active,
            cursor=query.page.cursor,
            limit=query.page.limit,
        )
    except ValueError as exc:
        raise BadRequest(f"cursor: {exc}") from None
    now = store.clock()
    described = describer(store)
    # The name a person signed in with ([identity]), beside their subject; None else.
    names = await store.people.names() if records else {}
    return json_response(
        {
            "consents": [
                {
                    **consent_listing(r, now),
                    "user": names.get(r.subject),
                    **(await described(r.client_id)).fields(),
                }
                for r in records
            ],
            "next_cursor": next_cursor,
        }
    )


async def get_consent(request: web.Request) -> web.Response:
    """``GET /admin/consents/{id}``: the record and whether it verifies; 404 when absent."""
    ident = parse_record_id(request.match_info["id"])
    store = _store(request)
    found = await store.inspect(ident)
    if found is None:
        return json_response(
            {"error": "not_found", "message": f"no consent with id {ident!r}"}, 404
        )
    if isinstance(found, VerificationFailure):
        return json_response(
            {
                "id": ident,
                "consent": None,
                "verification": {"status": "tampered", "reason": found.reason},
            }
        )
    described = await describer(store)(found.client_id)
    return json_response(
        {
            "id": ident,
            "consent": {**consent_listing(found, store.clock()), **described.fields()},
            "verification": {"status": "valid"},
        }
    )


async def revoke_consents(request: web.Request) -> web.Response:
    """``POST /admin/consents/revoke``: one selector; answers how many were revoked."""
    body, complete = await read_up_to(request.content, MAX_BODY_BYTES)
    if not complete:
        raise BadRequest(f"the body is larger than {MAX_BODY_BYTES} bytes")
    selected = parse_revoke_body(body)
    # The admin listener has no request context: this id ties the audit row to the
    # answer (X-Request-Id), which the operator's tooling can log.
    request_id = new_request_id()
    store = _store(request)
    if selected.by_user:
        count = 0
        for subject in await store.people.subjects_named(selected.value or ""):
            count += await store.revoke(subject=subject, by="admin", request_id=request_id)
    else:
        count = await store.revoke(**selected.arguments(), by="admin", request_id=request_id)
    response = json_response({"revoked": count})
    response.headers["X-Request-Id"] = request_id
    return response


async def list_clients(request: web.Request) -> web.Response:
    """``GET /admin/clients``: a page of clients of one kind; ``next_cursor``.

    ``kind=registered`` (the default) pages the verified registrations the store keeps.
    A client named by a URL has no registration, and its metadata document is not
    stored (each process fetches and caches it in memory, so no listing of documents
    would be the same from one worker to the next): ``kind=metadata_document`` lists
    the URL clients that people approved, from the verified records, with their
    domain and counts, which is what an operator acts on (``revoke`` by client_id);
    ``kind=unknown`` likewise the other client_ids without a registration."""
    query = parse_clients_query(request.rel_url.query.items())
    store = _store(request)
    if query.kind != "registered":
        return json_response(await _approved_clients(store, query))
    try:
        clients, next_cursor = await store.page_clients(
            cursor=query.page.cursor, limit=query.page.limit
        )
    except ValueError as exc:
        raise BadRequest(f"cursor: {exc}") from None
    return json_response(
        {
            "clients": [
                {**client_listing(c), **describe(c.client_id, registered=True).fields()}
                for c in clients
            ],
            "next_cursor": next_cursor,
        }
    )


async def _approved_clients(store: ConsentStore, query: ClientsQuery) -> dict[str, Any]:
    """The clients of ``query.kind`` that verified records name, oldest first: one pass
    over the records per page (the position is an index into that list)."""
    listing: Listing = (
        "metadata_document_clients" if query.kind == "metadata_document" else "unknown_clients"
    )
    try:
        start = 0 if query.page.cursor is None else decode_cursor(listing, query.page.cursor)
    except ValueError as exc:
        raise BadRequest(f"cursor: {exc}") from None
    described = describer(store)
    tally = ApprovalTally()
    now = store.clock()
    async for record in store.iter_records():
        description = await described(record.client_id)
        if description.kind == query.kind:
            tally.add(record, description, now)
    clients = tally.clients()
    end = start + query.page.limit
    return {
        "clients": [entry.listing() for entry in clients[start:end]],
        "next_cursor": encode_cursor(listing, end) if end < len(clients) else None,
    }


async def list_audit(request: web.Request) -> web.Response:
    """``GET /admin/audit``: a page of audit rows, oldest first, filtered; ``next_cursor``."""
    store = _store(request)
    query = parse_audit_query(request.rel_url.query.items(), store.clock())
    # What was decided before this request is in the answer; a store that cannot be
    # written does not hold the listing up (its read then answers, or says 503).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(FLUSH_WAIT):
            await store.flush_audit()
    subject = None if query.user is None else await _one_person(store, query.user)
    if subject == "":
        return json_response({"audit": [], "next_cursor": None})
    try:
        records, next_cursor = await store.page_audit(
            since=query.since,
            event=query.event,
            client_id=query.client_id,
            request_id=query.request_id,
            subject=subject,
            cursor=query.page.cursor,
            limit=query.page.limit,
        )
    except ValueError as exc:
        raise BadRequest(f"cursor: {exc}") from None
    return json_response(
        {"audit": [record.as_json() for record in records], "next_cursor": next_cursor}
    )


async def _one_person(store: ConsentStore, user: str) -> str:
    """The one subject shown as ``user`` ([identity]); "" when nobody is. A name two
    subjects share (an email that moved to another account) is refused, naming them:
    a page of one listing follows one subject (ask by ``subject``)."""
    subjects = await store.people.subjects_named(user)
    if len(subjects) > 1:
        named = ", ".join(subjects)
        raise BadRequest(
            f"user: {len(subjects)} people are named {user[:60]!r}: {named}; ask by subject"
        )
    return subjects[0] if subjects else ""


def add_routes(router: web.UrlDispatcher) -> None:
    """The API's routes (beside ``/metrics``, which the listener adds)."""
    router.add_get("/admin/consents", list_consents)
    router.add_post("/admin/consents/revoke", revoke_consents)
    router.add_get("/admin/consents/{id}", get_consent)
    router.add_get("/admin/clients", list_clients)
    router.add_get("/admin/audit", list_audit)
