"""Learning clients from dynamic registration responses as they pass through.

RFC 7591 §3.2.1: the registration RESPONSE is authoritative (the server may have
changed or refused requested metadata), so the gate records what the upstream
answered, never what the client asked for, and relays the response untouched.
What it learns decides two things: which redirect URIs a client may use (a
mismatch is refused without redirecting), and whether errors may be redirected
to the client at all (only for clients seen registering).
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from consentgate.audit.client_events import ClientRegistered, RegistrationRefused
from consentgate.core.oauth.paths import RoutedPath
from consentgate.upstream.bounded_read import read_up_to
from consentgate.web.appkeys import STORE
from consentgate.web.audit_emit import audit_event, request_id
from consentgate.web.relay import (
    RequestTooLarge,
    UpstreamExchange,
    UpstreamFailure,
    response_headers,
    stream_response,
    upstream_failure_response,
    upstream_headers,
)
from consentgate.web.rendering.pages import error_response

log = logging.getLogger("consentgate")

MAX_REGISTRATION_BYTES = 256 * 1024


async def register(request: web.Request, routed: RoutedPath) -> web.StreamResponse:
    """Relay a registration; learn the client from a 2xx JSON answer."""
    query = request.raw_path.partition("?")[2]
    target = routed.forward_path + (f"?{query}" if query else "")
    headers = upstream_headers(request)
    headers["Accept-Encoding"] = "identity"  # the gate must be able to read the answer
    try:
        async with UpstreamExchange(request, target, headers=headers) as upstream:
            out = response_headers(request, upstream)
            if not (request.method in ("POST", "PUT") and 200 <= upstream.status < 300):
                return await stream_response(request, upstream, out)
            # A successful registration the gate cannot read would leave the client
            # unknown, which silently turns its redirect-URI check off: refuse it
            # instead (fail closed). The client may retry.
            if upstream.content_type != "application/json" or (
                upstream.headers.get("Content-Encoding", "identity").lower() != "identity"
            ):
                return _unlearnable(request, "is not uncompressed JSON")
            body, complete = await read_up_to(upstream.content, MAX_REGISTRATION_BYTES)
            if not complete:
                return _unlearnable(request, f"is larger than {MAX_REGISTRATION_BYTES} bytes")
            problem = await asyncio.shield(_learn(request, body))
            if problem is not None:
                return _unlearnable(request, problem)
            for name in ("Content-Length", "Transfer-Encoding"):
                out.popall(name, None)
            return web.Response(status=upstream.status, headers=out, body=body)
    except RequestTooLarge:
        return error_response(request, 413, "request_too_large", "The request is too large.")
    except UpstreamFailure as exc:
        return upstream_failure_response(request, exc, "upstream_error")


def _unlearnable(request: web.Request, problem: str) -> web.Response:
    log.warning(
        "registration refused: the upstream's answer cannot be learned",
        extra={"fields": {"problem": problem}},
    )
    audit_event(request, RegistrationRefused(request_id=request_id(request), problem=problem))
    return error_response(
        request,
        502,
        "registration_unreadable",
        f"The registration answer {problem}, so this gate cannot check the client's "
        "redirect addresses later; the registration is refused.",
    )


async def _learn(request: web.Request, body: bytes) -> str | None:
    """Store the client of a registration answer; the problem when it cannot be."""
    try:
        document = json.loads(body)
    except ValueError:
        return "is not JSON"
    if not isinstance(document, dict) or not isinstance(document.get("client_id"), str):
        return "has no client_id"
    try:
        record = await request.app[STORE].upsert_client(document)
    except ValueError as exc:
        return f"cannot be stored ({exc})"
    audit_event(
        request,
        ClientRegistered(
            request_id=request_id(request),
            client_id=record.client_id,
            redirect_uris=tuple(record.redirect_uris),
        ),
    )
    return None
