"""The application factory: ``create_app(config)``, used by the CLI and the tests.

Resources (the document fetcher, the upstream session, the store) are opened and closed in
``cleanup_ctx``, so a failed start closes what was opened and a stop closes
everything. Every request the gate does not answer itself goes through
:func:`dispatch`, which classifies the path once (:mod:`consentgate.core.oauth.paths`) and
hands it to the rule that owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from consentgate.admin.admin_listener import admin_listener
from consentgate.audit.events import AuditTrail
from consentgate.config.model import Config
from consentgate.config.reload_hooks import ReloadHooks
from consentgate.config.settings import LiveSettings
from consentgate.core.clock import Clock, system_clock
from consentgate.core.identity.resumption import CONTINUE_PATH
from consentgate.core.oauth.idp_handoff import IdpMemory
from consentgate.core.oauth.issuer import IssuerCache
from consentgate.core.oauth.oauth_errors import TemporarilyUnavailable
from consentgate.core.oauth.paths import Route
from consentgate.core.requestids import is_request_id, new_request_id
from consentgate.core.signed.cookies import CookieCrypto, CookieNames
from consentgate.core.signed.keyring import derive_key, secret_fingerprint
from consentgate.core.startup_errors import StartupError
from consentgate.core.throttle import Throttle
from consentgate.core.trust import forwarding
from consentgate.metrics.collectors import Metrics
from consentgate.serving.store_presence import store_presence
from consentgate.signing.key_directory import load_cookie_secret, load_keyring
from consentgate.store import ConsentStore
from consentgate.store.opening import open_store
from consentgate.store.store_errors import StoreUnavailable
from consentgate.upstream.upstream_client import Upstream
from consentgate.web.appkeys import (
    AUDIT,
    CLIENT_IP,
    CLOCK,
    CONFIG_FILE_PROBE,
    COOKIE_CRYPTO,
    ENDPOINT_MISMATCHES_LOGGED,
    IDP_MEMORY,
    IN_FLIGHT,
    ISSUER,
    KEY_PROBLEMS,
    LIVE_SETTINGS,
    METRICS,
    PEER_IP,
    RELOAD_HOOKS,
    REQUEST_ID,
    SETTINGS,
    STORE,
    STORE_LOG,
    TEMPLATES,
    UPSTREAM,
    UPSTREAM_LOG,
)
from consentgate.web.config_file_probe import ConfigFileProbe
from consentgate.web.consent_flow.approvals import approvals_answer, approvals_page
from consentgate.web.consent_flow.authorize import authorize
from consentgate.web.consent_flow.callback import callback
from consentgate.web.consent_flow.consent import consent_answer
from consentgate.web.documents import documents_ctx
from consentgate.web.endpoints import endpoints_at_start
from consentgate.web.guards.bodies import RequestBodyStalled
from consentgate.web.guards.endings import report_ended_early, why_ended_early
from consentgate.web.guards.inflight import InFlight
from consentgate.web.identity.signin_callback import signin_callback
from consentgate.web.identity.signin_continue import signin_continue
from consentgate.web.identity.signin_setup import identity_ctx
from consentgate.web.identity.signin_start import CALLBACK_PATH
from consentgate.web.key_fleet import learn_keys
from consentgate.web.probes import healthz, readyz
from consentgate.web.registration import register
from consentgate.web.relay import SERVER_HEADER, relay
from consentgate.web.rendering.pages import ASSET_CSP, error_response
from consentgate.web.rendering.templates import Templates

log = logging.getLogger("consentgate")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: How often expired pending requests and flow bindings are deleted.
PURGE_INTERVAL = 60.0
#: How often the store's file is checked for having been deleted or replaced.
WATCH_INTERVAL = 2.0
#: At most one "store unavailable" line per kind of outage in this many seconds.
STORE_LOG_INTERVAL = 10.0


def in_context(handler: Handler) -> Handler:
    """``handler`` with the gate's request context: the settings snapshot, request id,
    peer and client address for every request, the errors every handler shares, and
    the request id and a neutral ``Server`` on every response; no trace ever leaves.

    A wrapper around each route's handler rather than an aiohttp middleware:
    with no middleware aiohttp calls the handler directly, with one it adds
    two coroutine frames and its own ``current_app`` bookkeeping to every request.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        response = await _handle_in_context(request, handler)
        if not response.prepared:
            # Streamed responses (the relay) set both before they start:
            # :func:`consentgate.web.relay.stream_response`.
            headers = response.headers
            headers["X-Request-Id"] = request[REQUEST_ID]
            headers["Server"] = SERVER_HEADER
        return response

    return functools.update_wrapper(handle, handler)


async def _handle_in_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[LIVE_SETTINGS].current
    request[SETTINGS] = settings
    trusted_proxies = settings.config.server.trusted_proxies
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
        if is_request_id(incoming):
            request_id = incoming
    request[REQUEST_ID] = request_id or new_request_id()
    request[CLIENT_IP] = forwarding.client_address(
        peer, request.headers.get("X-Forwarded-For") if trusted else None, trusted_proxies
    )
    started = time.monotonic()
    in_flight = request.app[IN_FLIGHT]
    in_flight.enter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(request, exc.status, "http_error", exc.reason)
        raise
    except StoreUnavailable as exc:
        # Fails closed: whatever needed the store (an authorization, a consent answer,
        # a callback) is refused, never relayed; the reason is one line, no traceback,
        # and at most one line per kind of outage every STORE_LOG_INTERVAL seconds.
        request.app[METRICS].store_unavailable.inc()
        if STORE in request.app:
            request.app[STORE].mark_unhealthy()
        left_out = request.app[STORE_LOG].allow(exc.kind)
        if left_out is not None:
            log.warning(
                "store unavailable",
                extra={
                    "fields": {
                        "request_id": request[REQUEST_ID],
                        "kind": exc.kind,
                        "error": type(exc.__cause__ or exc).__name__,
                        "reason": str(exc),
                        "not_logged_since_last": left_out,
                    }
                },
            )
        response = error_response(
            request,
            TemporarilyUnavailable.status,
            TemporarilyUnavailable.code,
            "Sign-in is unavailable for a moment: the consent records cannot be reached. "
            "Nothing was sent on. Try again in a minute.",
            title="Try again shortly",
        )
        response.headers["Retry-After"] = "30"
        return response
    except RequestBodyStalled:
        # RFC 9110 section 15.5.9: the client did not send the body it announced in
        # time; the connection closes, since the rest of that body may still come.
        response = error_response(
            request, 408, "request_timeout", "The request body stopped arriving."
        )
        response.force_close()
        return response
    except (asyncio.CancelledError, ConnectionResetError) as exc:
        why = why_ended_early(request)
        if why is None:
            if isinstance(exc, asyncio.CancelledError):
                raise
            return _unhandled(request)
        report_ended_early(request, why, started)
        # Abandoned, as aiohttp abandons a handler whose client left: no response is
        # written, and aiohttp writes no second access line.
        raise asyncio.CancelledError from None
    except Exception:
        return _unhandled(request)
    finally:
        in_flight.leave()
    return response


def _unhandled(request: web.Request) -> web.StreamResponse:
    log.exception("unhandled error", extra={"fields": {"request_id": request[REQUEST_ID]}})
    return error_response(request, 500, "internal_error", "The gate failed to handle this request.")


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Route a request by the canonical reading of its path (see :mod:`paths`)."""
    raw_path, _, query = request.raw_path.partition("?")
    routed = request[SETTINGS].path_rules.classify(raw_path)
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


async def _upstream_ctx(app: web.Application) -> AsyncIterator[None]:
    """The one pool to the upstream, opened when the app starts, closed when it stops."""
    upstream = Upstream.open(app[LIVE_SETTINGS].current.config)
    app[UPSTREAM] = upstream
    try:
        yield
    finally:
        await upstream.close()


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    """Keys, cookie secret and the consent store; refuses to start when any is unusable.

    Registers the store's reload: re-read the key directory (after ``consentgate keys
    rotate`` or removing a retired key); a directory that no longer loads keeps the
    current keys in use.
    """
    config = app[LIVE_SETTINGS].current.config
    keyring = load_keyring(config.keys.dir, create=True)
    secret = load_cookie_secret(config.keys.dir, config.keys.cookie_secret)
    app[COOKIE_CRYPTO] = CookieCrypto(
        lambda purpose: derive_key(secret, purpose), CookieNames(config.secure_cookies)
    )
    store = await open_store(
        config.store, keyring, clock=app[CLOCK], audit=app[AUDIT], keys_dir=config.keys.dir
    )
    app[STORE] = store
    app[METRICS].watch_tampering(lambda: store.tamper_events)
    store.time_operations(app[METRICS].store_operation)
    try:
        app[KEY_PROBLEMS] = (
            *await _check_shared_secret(store, secret),
            *await _publish_keys(store),
        )
    except BaseException:
        await store.close()
        raise

    def reload_keys() -> None:
        try:
            keyring = load_keyring(config.keys.dir, create=False)
        except StartupError as exc:
            log.error("keys not reloaded", extra={"fields": {"reason": str(exc)}})
            return
        store.reload_keys(keyring)
        log.info("keys reloaded", extra={"fields": {"active_key": keyring.active_kid}})

    app[RELOAD_HOOKS].add(reload_keys)
    purge = asyncio.create_task(_purge_forever(store, config.store.keep_expired, config.audit.keep))
    watch = asyncio.create_task(_watch_forever(store, config.keys.dir))
    try:
        yield
    finally:
        for task in (purge, watch):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        app[RELOAD_HOOKS].remove(reload_keys)
        await store.close()


async def _watch_forever(store: ConsentStore, keys_dir: Path) -> None:
    """Notice a store file deleted or replaced under the gate even when nobody uses
    it (the backend logs it once, and from then on refuses), and learn the keys
    another gate staged (:func:`~consentgate.web.key_fleet.learn_keys`)."""
    while True:
        await asyncio.sleep(WATCH_INTERVAL)
        try:
            store.check_identity()
            await learn_keys(store, keys_dir)
        except StoreUnavailable:
            pass  # readiness and the requests that need the store say so
        except Exception:
            # This loop must outlive any one failure: it also watches the store file.
            log.exception("the keys published in the store were not checked")


async def _check_shared_secret(store: ConsentStore, secret: bytes) -> tuple[str, ...]:
    """Every gate on one store must use one cookie secret: a consent page, a CSRF token
    or a flow binding made by one gate is checked by another."""
    mine = secret_fingerprint(secret)
    theirs = await store.claim_cookie_fingerprint(mine)
    if theirs == mine:
        return ()
    log.error(
        "this gate's cookie secret differs from the one of the gates sharing its store; not ready",
        extra={"fields": {"this_gate": mine, "store": theirs}},
    )
    return (
        f"keys: this gate's cookie secret (fingerprint {mine}) differs from the one the "
        f"store's gates use (fingerprint {theirs}); give every gate the same keys "
        "directory or cookie_secret_file, or after changing it on every gate on purpose "
        "run: consentgate keys adopt-cookie-secret",
    )


async def _publish_keys(store: ConsentStore) -> tuple[str, ...]:
    """Keep this gate's public keys in the store, so records can be verified from any
    machine that reaches it. A stored key that differs from ours
    under the same kid was edited in the database: not ready. A stored key this gate
    lacks is only logged: its records are refused here (tampered), which fails closed.
    """
    differing = await store.publish_keys()
    stored = await store.stored_keys()
    unknown = sorted(set(stored.keys) - set(store.keyring.kids))
    if unknown or stored.unreadable:
        log.warning(
            "the store keeps signing keys this gate does not have; records signed with "
            "them are not honoured here: give every gate the same keys directory",
            extra={"fields": {"unknown_keys": unknown, "unreadable": list(stored.unreadable)}},
        )
    if not differing:
        return ()
    log.error(
        "the store keeps another public key under this gate's key id; not ready",
        extra={"fields": {"kids": list(differing)}},
    )
    return (
        f"keys: the store keeps a different public key under key id(s) "
        f"{', '.join(differing)} than this gate's keys directory, so the store was "
        "edited: look for other edits with consentgate consents verify, then delete the "
        "settings row(s) signing_key:<key id>; the gate writes them again at start",
    )


async def _purge_forever(store: ConsentStore, keep_records: float, keep_audit: float) -> None:
    """Expired consent pages and flow bindings are removed, not only ignored; consent
    records go once they expired or were revoked more than ``keep_records`` ago, audit
    rows once they are older than ``keep_audit`` (with a checkpoint row)."""
    while True:
        await asyncio.sleep(PURGE_INTERVAL)
        try:
            await store.purge_expired(keep_records=keep_records)
            await store.purge_audit(keep_audit)
        except StoreUnavailable:
            pass  # readiness and the requests that need the store say so
        except Exception:
            log.exception("purging expired pending requests failed")


async def _static_asset(request: web.Request) -> web.StreamResponse:
    """The stylesheets, the favicon and the logo. A content-hashed name is cached for a
    year, ``immutable`` (RFC 8246): a changed file is a new name. Served with a CSP of
    its own (``sandbox``, no script) so an SVG opened as a document stays inert."""
    name = request.match_info["name"]
    asset = request.app[TEMPLATES].assets.get(name)
    if asset is None:
        return error_response(request, 404, "not_found", "There is nothing at this address.")
    response = web.Response(body=asset.body, content_type=asset.content_type)
    response.headers["Cache-Control"] = (
        "public, max-age=31536000, immutable" if asset.immutable else "public, max-age=3600"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = ASSET_CSP
    return response


def create_app(
    config: Config,
    *,
    clock: Clock = system_clock,
    templates: Templates | None = None,
    audit: AuditTrail | None = None,
) -> web.Application:
    """Build the gate for ``config``. Nothing is opened until the app starts.

    ``clock`` is the time source of every expiry decision (tests inject one);
    ``audit`` receives every audited decision (default: the ``consentgate.audit`` log).
    """
    app = web.Application(client_max_size=1024**2)
    app[LIVE_SETTINGS] = LiveSettings(config)
    app[CLOCK] = clock
    app[AUDIT] = audit or AuditTrail()
    app[RELOAD_HOOKS] = ReloadHooks()
    app[IN_FLIGHT] = InFlight()
    app[METRICS] = Metrics()
    app[AUDIT].add_sink(app[METRICS].audit_sink)
    app[STORE_LOG] = Throttle(STORE_LOG_INTERVAL)
    app[UPSTREAM_LOG] = Throttle(STORE_LOG_INTERVAL)
    app[TEMPLATES] = templates or Templates.from_config(config.ui)
    app[ISSUER] = IssuerCache(config.upstream.issuer, clock)
    app[ENDPOINT_MISMATCHES_LOGGED] = set()
    app[CONFIG_FILE_PROBE] = ConfigFileProbe()
    app[IDP_MEMORY] = IdpMemory()
    app.cleanup_ctx.append(documents_ctx)
    app.cleanup_ctx.append(_upstream_ctx)
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(store_presence)
    app.cleanup_ctx.append(identity_ctx)
    app.cleanup_ctx.append(endpoints_at_start)
    app.cleanup_ctx.append(admin_listener)
    prefix = config.server.prefix
    app.router.add_get(f"{prefix}/healthz", in_context(healthz), allow_head=True)
    app.router.add_get(f"{prefix}/readyz", in_context(readyz), allow_head=True)
    app.router.add_get(f"{prefix}/static/{{name}}", in_context(_static_asset))
    app.router.add_post(f"{prefix}/consent", in_context(consent_answer))
    app.router.add_get(f"{prefix}/approvals", in_context(approvals_page))
    app.router.add_post(f"{prefix}/approvals", in_context(approvals_answer))
    if config.identity.enabled:
        app.router.add_get(f"{prefix}{CALLBACK_PATH}", in_context(signin_callback))
        app.router.add_get(f"{prefix}{CONTINUE_PATH}", in_context(signin_continue))
    app.router.add_route("*", "/{tail:.*}", in_context(dispatch))
    return app
