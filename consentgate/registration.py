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

from consentgate.appkeys import STORE
from consentgate.bodies import read_up_to
from consentgate.browser import audit_event
from consentgate.pages import error_response
from consentgate.paths import RoutedPath
from consentgate.relay import (
    RequestTooLarge,
    UpstreamExchange,
    UpstreamFailure,
    response_headers,
    stream_response,
    upstream_headers,
)

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
            learnable = (
                request.method in ("POST", "PUT")
                and 200 <= upstream.status < 300
                and upstream.content_type == "application/json"
                and "Content-Encoding" not in upstream.headers
            )
            if not learnable:
                return await stream_response(request, upstream, out)
            body, complete = await read_up_to(upstream.content, MAX_REGISTRATION_BYTES)
            if not complete:
                log.warning("registration response too large to learn from")
                response = web.StreamResponse(status=upstream.status)
                response.headers.extend(out)
                await response.prepare(request)
                await response.write(body)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
            await asyncio.shield(_learn(request, body))
            for name in ("Content-Length", "Transfer-Encoding"):
                out.popall(name, None)
            return web.Response(status=upstream.status, headers=out, body=body)
    except RequestTooLarge:
        return error_response(request, 413, "request_too_large", "The request is too large.")
    except UpstreamFailure as exc:
        return error_response(request, exc.status, "upstream_error", exc.reason + ".")


async def _learn(request: web.Request, body: bytes) -> None:
    try:
        document = json.loads(body)
    except ValueError:
        log.warning("registration response is not JSON; client not learned")
        return
    if not isinstance(document, dict) or not isinstance(document.get("client_id"), str):
        log.warning("registration response has no client_id; client not learned")
        return
    try:
        record = await request.app[STORE].upsert_client(document)
    except ValueError as exc:
        log.warning("registration response not stored", extra={"fields": {"error": str(exc)}})
        return
    audit_event(
        request,
        "client_registered",
        "client registration observed",
        client_id=record.client_id,
        redirect_uris=" ".join(record.redirect_uris),
    )
