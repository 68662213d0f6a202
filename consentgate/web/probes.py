"""Liveness and readiness probes under the gate's prefix.

``healthz`` answers as long as the event loop runs and checks nothing else, so an
orchestrator does not restart a healthy gate because its upstream is down.
``readyz`` says whether the gate can do its job: the upstream answers (any HTTP
status counts: it is reachable), the paths the gate guards are the endpoints the
upstream's metadata advertises (``web/endpoints.py``) and, once the store exists,
the store is usable and its audit trail has not gone back behind the mark in the
keys directory, and this gate has the key the store names the fleet's signing key
(a gate that is behind a key rotation warns: :mod:`consentgate.web.key_fleet`).

``readyz`` also warns (still 200, a ``warnings`` entry) when the configuration file
on disk no longer loads: the gate serves on under the configuration it loaded, as
after a refused SIGHUP, but its next restart would fail. The probe is public, so it
says only that; the reasons are logged, once each, until the file loads again.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from consentgate.upstream.failures import UpstreamError
from consentgate.web.appkeys import (
    CONFIG_FILE_PROBE,
    CONFIG_SOURCE,
    KEY_PROBLEMS,
    STORE,
    UPSTREAM,
)
from consentgate.web.endpoints import endpoint_problems
from consentgate.web.key_fleet import KeyLag, key_lag
from consentgate.web.rendering.pages import secure

log = logging.getLogger("consentgate")


def _json(status: int, document: dict[str, object]) -> web.Response:
    response = web.Response(
        status=status, text=json.dumps(document), content_type="application/json"
    )
    secure(response)
    return response


async def healthz(request: web.Request) -> web.StreamResponse:
    return _json(200, {"status": "ok"})


async def upstream_reachable(app: web.Application) -> str | None:
    """None when the upstream answered an HTTP request, else the reason."""
    upstream = app[UPSTREAM]
    try:
        # Any status counts; the body is read (bounded) only to return the connection.
        await upstream.fetch(
            "/", total_seconds=min(upstream.connect_timeout, 5.0) + 2.0, max_bytes=64 * 1024
        )
    except TimeoutError:
        return "upstream: no answer in time"
    except UpstreamError as exc:
        return f"upstream: unreachable ({type(exc).__name__})"
    return None


async def store_usable(app: web.Application) -> str | None:
    """None when the consent store can be read and written, else the reason:
    ``store: locked``, ``read-only``, ``disk full``, ``gone``, ``I/O error``, ...
    (:meth:`~consentgate.store.ConsentStore.health`; the log has the details)."""
    try:
        problem = await app[STORE].health()
    except Exception as exc:
        return f"store: unusable ({type(exc).__name__})"
    if problem is None:
        return None
    if problem.kind == "upgraded":
        return "store: upgraded by a newer consentgate; restart"
    return f"store: {problem.kind}"


async def audit_trail_intact(app: web.Application) -> str | None:
    """None unless the audit trail went back behind the high-water mark in the keys
    directory (emptied or cut back in the database: :mod:`consentgate.store.auditmark`).
    A store that cannot be read is :func:`store_usable`'s to report."""
    try:
        problem = await app[STORE].audit_trail_problem()
    except Exception:
        return None
    return None if problem is None else f"audit trail: {problem}"


async def config_file_loads(app: web.Application) -> str | None:
    """None when the configuration file on disk loads (or the gate was given none to
    re-read: ``app[CONFIG_SOURCE]``), else the warning; read as a SIGHUP would read it
    (environment overrides and secret files included), one read at a time
    (:mod:`consentgate.web.config_file_probe`)."""
    source = app.get(CONFIG_SOURCE)
    if source is None:
        return None
    return await app[CONFIG_FILE_PROBE].check(source)


async def readyz(request: web.Request) -> web.StreamResponse:
    checks = [
        upstream_reachable(request.app),
        store_usable(request.app),
        audit_trail_intact(request.app),
    ]
    found, mismatches, config_file = await asyncio.gather(
        asyncio.gather(*checks), endpoint_problems(request.app), config_file_loads(request.app)
    )
    warnings = [config_file] if config_file is not None else []
    problems = [reason for reason in found if reason is not None]
    problems.extend(mismatches)
    if KEY_PROBLEMS in request.app:
        key_problems: tuple[str, ...] = request.app[KEY_PROBLEMS]
        problems.extend(key_problems)
    store = request.app.get(STORE)
    keys = await key_lag(store) if store is not None else KeyLag()
    problems.extend(keys.problems)
    warnings.extend(keys.warnings)
    if store is not None and not store.sees_other_writers:
        # Still correct (every answer is read from the store), so still ready; said so
        # for the operator, since every authorization now costs a database round trip.
        warnings.append(
            "store: changes by other instances are not notified right now; "
            "answering from the database until the notifications are back"
        )
    extra = {"warnings": warnings} if warnings else {}
    if problems:
        return _json(503, {"status": "unavailable", "reasons": problems, **extra})
    return _json(200, {"status": "ready", **extra})
