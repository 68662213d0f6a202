"""The admin listener on ``[admin] listen``: ``/metrics`` and the admin API.

Its own port, never the public one: operators and scrapers reach it on
loopback or a private network, the internet never does. Every request but
``GET /metrics`` (unless ``metrics_need_token``) must carry
``Authorization: Bearer <the token of [admin] token_file>`` (RFC 6750 §2.1),
compared in constant time (:func:`~consentgate.admin.api_parsing.token_matches`).
A missing or wrong token is answered 401 with ``WWW-Authenticate: Bearer`` (RFC 6750
§3; ``error="invalid_token"`` for a wrong one), counted in
``consentgate_admin_unauthorized_total{reason}``, and never logged: neither the token
nor the Authorization header appears in any log line (the listener has no access log).

Every answer is JSON (errors too: ``{"error": ..., "message": ...}``) with
``Cache-Control: no-store``, following Hydra's admin API conventions.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from consentgate.admin.admin_handlers import add_routes, json_response
from consentgate.admin.api_parsing import AdminToken, BadRequest, bearer_token
from consentgate.config.sections_operations import AdminConfig
from consentgate.core.startup_errors import StartupError, cannot_listen
from consentgate.metrics.collectors import EXPOSITION_TYPE, Metrics
from consentgate.metrics.worker_merge import LOCAL_PATH, gather, socket_path
from consentgate.signing.admin_token import load_admin_token
from consentgate.store import ConsentStore
from consentgate.store.store_errors import StoreUnavailable
from consentgate.web.appkeys import (
    IN_FLIGHT,
    LIVE_SETTINGS,
    METRICS,
    RELOAD_HOOKS,
    STORE,
    WORKER_PLACE,
    WorkerPlace,
)
from consentgate.web.guards.malformed import CleanErrorsAppRunner

log = logging.getLogger("consentgate")

ADMIN_TOKEN = web.AppKey("admin_token", AdminToken)
#: Whether ``GET /metrics`` is open to a scraper without the token.
METRICS_OPEN: web.AppKey[bool] = web.AppKey("metrics_open")
BEFORE_SCRAPE: web.AppKey[Callable[[], Awaitable[None]]] = web.AppKey("before_scrape")

_REALM = 'Bearer realm="consentgate-admin"'


def _unauthorized(request: web.Request, presented: str | None) -> web.Response:
    reason = "missing" if presented is None else "wrong"
    request.app[METRICS].admin_unauthorized[reason].inc()
    response = json_response(
        {
            "error": "unauthorized",
            "message": "send Authorization: Bearer <the token of [admin] token_file>"
            if presented is None
            else "the bearer token is not the admin token",
        },
        401,
    )
    response.headers["WWW-Authenticate"] = (
        _REALM if presented is None else f'{_REALM}, error="invalid_token"'
    )
    return response


@web.middleware
async def admin_guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The token first (so an unauthenticated caller learns nothing, not even which
    paths exist), then every failure as a JSON answer, an unforeseen one included."""
    app = request.app
    if not (request.path == "/metrics" and app[METRICS_OPEN]):
        presented = bearer_token(request.headers.get("Authorization"))
        if not app[ADMIN_TOKEN].matches(presented):
            return _unauthorized(request, presented)
    try:
        return await handler(request)
    except BadRequest as exc:
        return json_response({"error": "bad_request", "message": str(exc)}, 400)
    except StoreUnavailable as exc:
        app[STORE].mark_unhealthy()
        response = json_response(
            {"error": "store_unavailable", "kind": exc.kind, "message": str(exc)}, 503
        )
        response.headers["Retry-After"] = "5"
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        response = json_response({"error": error, "message": exc.reason}, exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        # A failure nobody foresaw: logged here, answered as JSON like every other,
        # never as aiohttp's plain-text 500 (and its traceback in aiohttp's log).
        log.exception("admin request failed", extra={"fields": {"path": request.path}})
        return json_response(
            {"error": "internal_error", "message": "the admin API failed to answer"}, 500
        )


async def serve_metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: the Prometheus text format (prometheus-client's writer); under a
    supervisor, every worker's figures added up (:mod:`consentgate.metrics.worker_merge`)."""
    await request.app[BEFORE_SCRAPE]()
    body = request.app[METRICS].exposition()
    place = request.app.get(WORKER_PLACE)
    if place is not None:
        body = await gather(body, place.directory, place.number, place.count)
    response = web.Response(body=body)
    response.headers["Content-Type"] = EXPOSITION_TYPE
    response.headers["Cache-Control"] = "no-store"
    return response


async def _nothing() -> None:
    return None


def admin_app(
    metrics: Metrics,
    store: ConsentStore,
    token: AdminToken,
    *,
    metrics_need_token: bool = False,
    before_scrape: Callable[[], Awaitable[None]] = _nothing,
    place: WorkerPlace | None = None,
) -> web.Application:
    """The admin listener's application. ``before_scrape`` refreshes what is read
    from the store at each scrape."""
    app = web.Application(middlewares=[admin_guard], client_max_size=64 * 1024)
    app[METRICS] = metrics
    app[STORE] = store
    app[ADMIN_TOKEN] = token
    app[METRICS_OPEN] = not metrics_need_token
    app[BEFORE_SCRAPE] = before_scrape
    if place is not None:
        app[WORKER_PLACE] = place
    app.router.add_get("/metrics", serve_metrics)
    add_routes(app.router)
    return app


def _reload_token(config: AdminConfig, token: AdminToken) -> Callable[[], None]:
    def reload_token() -> None:
        assert config.token_file is not None  # noqa: S101 - the config requires it
        try:
            loaded = load_admin_token(config.token_file)
        except StartupError as exc:
            log.error("admin token not reloaded", extra={"fields": {"reason": str(exc)}})
            return
        if not hmac.compare_digest(loaded, token.current):
            token.current = loaded
            log.info("admin token reloaded")

    return reload_token


async def admin_listener(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the admin listener on ``[admin] listen`` for the app's lifetime.

    Refuses to start (a :class:`StartupError` naming ``admin.token_file``) when the
    token file is unusable: missing, open to group or others, or too short. SIGHUP
    re-reads it (a rotated token, no restart; logged only when it changed); a file
    that no longer loads keeps the token in use, and a reload that refused the
    configuration file does not re-read it at all (:mod:`consentgate.serving.sighup`)."""
    config = app[LIVE_SETTINGS].current.config.admin
    listen = config.listen
    if listen is None:
        yield
        return
    if config.token_file is None:  # pragma: no cover - load_config refuses it
        raise StartupError("admin.token_file: required when admin.listen is set")
    token = AdminToken(load_admin_token(config.token_file))
    metrics = app[METRICS]
    in_flight = app[IN_FLIGHT]
    metrics.requests_in_flight.set_function(lambda: in_flight.requests)
    metrics.streams_open.set_function(lambda: in_flight.streams)
    store = app[STORE]

    async def read_store() -> None:
        with contextlib.suppress(StoreUnavailable):  # the last value stays; readyz says why
            metrics.pending_pages.set(await store.count_pending())

    runner = CleanErrorsAppRunner(
        admin_app(
            metrics,
            store,
            token,
            metrics_need_token=config.metrics_need_token,
            before_scrape=read_store,
            place=app.get(WORKER_PLACE),
        ),
        access_log=None,
    )
    place = app.get(WORKER_PLACE)
    peers: web.AppRunner | None = None
    reload_token = _reload_token(config, token)
    await runner.setup()
    app[RELOAD_HOOKS].add(reload_token)
    try:
        if place is not None:
            peers = await _answer_peers(metrics, read_store, place)
        # Under a supervisor every worker binds the admin port (SO_REUSEPORT), as the
        # public one: whichever answers a scrape answers for all.
        site = web.TCPSite(
            runner, listen.host, listen.port, reuse_address=True, reuse_port=place is not None
        )
        try:
            await site.start()
        except OSError as exc:
            raise cannot_listen("admin.listen", listen, exc) from None
        log.info("admin listening", extra={"fields": {"address": _urls(runner.addresses)}})
        yield
    finally:
        app[RELOAD_HOOKS].remove(reload_token)
        await runner.cleanup()
        if peers is not None:
            await peers.cleanup()


async def _answer_peers(
    metrics: Metrics, before_scrape: Callable[[], Awaitable[None]], place: WorkerPlace
) -> web.AppRunner:
    """This worker's own figures, for the other workers' scrapes, on a Unix socket in
    the supervisor's private directory (0700, so no token: only the gate's user)."""

    async def local(request: web.Request) -> web.Response:
        await before_scrape()
        return web.Response(body=metrics.exposition(), content_type="text/plain")

    peers = web.Application()
    peers.router.add_get(LOCAL_PATH, local)
    runner = CleanErrorsAppRunner(peers, access_log=None)
    await runner.setup()
    path = socket_path(place.directory, place.number)
    path.unlink(missing_ok=True)  # a restarted worker's old socket
    await web.UnixSite(runner, str(path)).start()
    return runner


def _urls(addresses: list[Any]) -> str:
    """Where the listener listens, as the public listener's ``listening`` line says it."""
    return ", ".join(
        f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        for host, port, *_ in addresses
    )
