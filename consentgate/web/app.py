"""The application factory: ``create_app(config)``, used by the CLI and the tests.

Resources (the upstream session, the store) are opened and closed in
``cleanup_ctx``, so a failed start closes what was opened and a stop closes
everything. Every request the gate does not answer itself goes through
:func:`dispatch`, which classifies the path once (:mod:`consentgate.core.paths`) and
hands it to the rule that owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from consentgate.core import forwarding
from consentgate.core.clock import Clock, system_clock
from consentgate.core.config import Config
from consentgate.core.cookies import CookieCrypto, CookieNames
from consentgate.core.issuer import IssuerCache
from consentgate.core.keys import derive_key, load_cookie_secret, load_keyring
from consentgate.core.paths import PathRules, Route
from consentgate.store import ConsentStore
from consentgate.web.appkeys import (
    CLIENT_IP,
    CLOCK,
    CONFIG,
    COOKIE_CRYPTO,
    COOKIE_PREFIXES,
    ISSUER,
    PATH_RULES,
    PEER_IP,
    PUBLIC_HOST,
    REQUEST_ID,
    STORE,
    TEMPLATES,
    UPSTREAM_SESSION,
)
from consentgate.web.authorize import authorize, consent_answer
from consentgate.web.callback import callback
from consentgate.web.pages import error_response
from consentgate.web.probes import healthz, readyz
from consentgate.web.registration import register
from consentgate.web.relay import make_upstream_session, relay
from consentgate.web.templates import Templates

log = logging.getLogger("consentgate")

_REQUEST_ID_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:")


#: Every cookie name the gate uses starts with one of these; none is ever relayed.
GATE_COOKIE_PREFIXES = ("__Host-cg_", "cg_")
#: How often expired pending requests and flow bindings are deleted.
PURGE_INTERVAL = 60.0


def path_rules(config: Config) -> PathRules:
    upstream = config.upstream
    exact = {
        upstream.authorize_path: Route.AUTHORIZE,
        upstream.callback_path: Route.CALLBACK,
        upstream.register_path: Route.REGISTER,
    }
    subtree = dict.fromkeys(upstream.blocked_paths, Route.BLOCKED)
    subtree[config.server.prefix] = Route.GATE
    return PathRules(exact, subtree)


@web.middleware
async def request_context(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Request id, peer and client address for every request; no trace ever leaves."""
    trusted_proxies = request.app[CONFIG].server.trusted_proxies
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    peer = forwarding.parse_ip(peername[0] if isinstance(peername, tuple) else None)
    request[PEER_IP] = peer
    # Forwarded headers count only from a trusted proxy; with none configured
    # (the common case) they are not even read.
    trusted = bool(trusted_proxies) and forwarding.is_trusted(peer, trusted_proxies)
    request_id = ""
    if trusted:
        incoming = request.headers.get("X-Request-Id", "")
        if 0 < len(incoming) <= 128 and set(incoming) <= _REQUEST_ID_OK:
            request_id = incoming
    request[REQUEST_ID] = request_id or secrets.token_hex(8)
    request[CLIENT_IP] = forwarding.client_address(
        peer, request.headers.get("X-Forwarded-For") if trusted else None, trusted_proxies
    )
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(request, exc.status, "http_error", exc.reason)
        raise
    except Exception:
        log.exception("unhandled error", extra={"fields": {"request_id": request[REQUEST_ID]}})
        return error_response(
            request, 500, "internal_error", "The gate failed to handle this request."
        )
    return response


#: The ``Server`` header of every response: no Python or aiohttp version for a scanner
#: to match, and the upstream's own (uvicorn, ...) is replaced too, as nginx does.
SERVER_HEADER = "consentgate"


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every response names its request id, streamed ones included, and a neutral server."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers["X-Request-Id"] = request_id
    response.headers["Server"] = SERVER_HEADER


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Route a request by the canonical reading of its path (see :mod:`paths`)."""
    raw_path, _, query = request.raw_path.partition("?")
    routed = request.app[PATH_RULES].classify(raw_path)
    route = routed.route
    if route is Route.AMBIGUOUS:
        return error_response(
            request,
            400,
            "ambiguous_path",
            "This path is spelled in a way that different servers read differently, "
            "so it is refused.",
        )
    if route in (Route.GATE, Route.BLOCKED):
        return error_response(request, 404, "not_found", "There is nothing at this address.")
    if route is Route.AUTHORIZE:
        return await authorize(request, routed)
    if route is Route.CALLBACK:
        return await callback(request, routed)
    if route is Route.REGISTER:
        return await register(request, routed)
    target = routed.forward_path + ("?" + query if query else "")
    return await relay(request, target)


async def _upstream_session_ctx(app: web.Application) -> AsyncIterator[None]:
    session = make_upstream_session(app[CONFIG])
    app[UPSTREAM_SESSION] = session
    yield
    await session.close()


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    """Keys, cookie secret and the consent store; refuses to start when any is unusable."""
    config = app[CONFIG]
    keyring = load_keyring(config.keys.dir, create=True)
    secret = load_cookie_secret(config.keys.dir, config.keys.cookie_secret)
    app[COOKIE_CRYPTO] = CookieCrypto(
        lambda purpose: derive_key(secret, purpose), CookieNames(config.secure_cookies)
    )
    store = await ConsentStore.open(config.store.path, keyring, clock=app[CLOCK])
    app[STORE] = store
    purge = asyncio.create_task(_purge_forever(store, config.store.keep_expired))
    try:
        yield
    finally:
        purge.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purge
        await store.close()


async def _purge_forever(store: ConsentStore, keep_records: float) -> None:
    """Expired consent pages and flow bindings are removed, not only ignored; consent
    records go once they expired or were revoked more than ``keep_records`` ago."""
    while True:
        await asyncio.sleep(PURGE_INTERVAL)
        try:
            await store.purge_expired(keep_records=keep_records)
        except Exception:
            log.exception("purging expired pending requests failed")


async def _static_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    body = request.app[TEMPLATES].assets.get(name)
    if body is None:
        return error_response(request, 404, "not_found", "There is nothing at this address.")
    content_type = {"css": "text/css", "svg": "image/svg+xml", "png": "image/png"}.get(
        name.rsplit(".", 1)[-1], "application/octet-stream"
    )
    response = web.Response(body=body, content_type=content_type)
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def create_app(
    config: Config, *, clock: Clock = system_clock, templates: Templates | None = None
) -> web.Application:
    """Build the gate for ``config``. Nothing is opened until the app starts.

    ``clock`` is the time source of every expiry decision (tests inject one).
    """
    app = web.Application(middlewares=[request_context], client_max_size=1024**2)
    app[CONFIG] = config
    app[CLOCK] = clock
    app[PATH_RULES] = path_rules(config)
    app[TEMPLATES] = templates or Templates()
    app[COOKIE_PREFIXES] = GATE_COOKIE_PREFIXES
    app[PUBLIC_HOST] = urllib.parse.urlsplit(config.server.public_url).netloc
    app[ISSUER] = IssuerCache(config.upstream.issuer, clock)
    app.cleanup_ctx.append(_upstream_session_ctx)
    app.cleanup_ctx.append(_store_ctx)
    app.on_response_prepare.append(_add_request_id)
    prefix = config.server.prefix
    app.router.add_get(f"{prefix}/healthz", healthz, allow_head=True)
    app.router.add_get(f"{prefix}/readyz", readyz, allow_head=True)
    app.router.add_get(f"{prefix}/static/{{name}}", _static_asset)
    app.router.add_post(f"{prefix}/consent", consent_answer)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
