"""The guarded paths against the upstream's metadata while serving (the rule is
:mod:`consentgate.core.oauth.upstream_endpoints`).

* At start (a ``cleanup_ctx``, once the store is open, so that what is wrong on
  this machine is said first): a difference refuses the
  start, with an error log line per key naming the configured path and the
  advertised URL. A gate whose authorization endpoint is not the upstream's
  protects nothing, so it fails closed.
* An upstream that does not answer, or publishes no metadata, does not block the
  start: it may start after the gate. ``readyz`` compares again at every probe
  (:func:`endpoint_problems`) and is not ready while they differ; each difference
  it sees is logged as an error once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from consentgate.core.oauth.issuer import METADATA_PATH
from consentgate.core.oauth.upstream_endpoints import (
    EndpointMismatch,
    endpoint_mismatches,
    metadata_request_headers,
    parse_metadata,
)
from consentgate.core.startup_errors import StartupError
from consentgate.upstream.failures import UpstreamError
from consentgate.web.appkeys import ENDPOINT_MISMATCHES_LOGGED, ISSUER, LIVE_SETTINGS, UPSTREAM

log = logging.getLogger("consentgate")

MAX_METADATA_BYTES: Final = 256 * 1024
FETCH_SECONDS: Final = 3.0


async def read_mismatches(app: web.Application) -> tuple[EndpointMismatch, ...] | None:
    """The differences, or None when there is nothing to compare with (the upstream
    does not answer, or answers no metadata document)."""
    settings = app[LIVE_SETTINGS].current
    try:
        status, body = await app[UPSTREAM].fetch(
            METADATA_PATH,
            total_seconds=FETCH_SECONDS,
            max_bytes=MAX_METADATA_BYTES,
            headers=metadata_request_headers(settings.config),
        )
    except (TimeoutError, UpstreamError):
        return None
    document = parse_metadata(status, body)
    if document is None:
        return None
    app[ISSUER].note(document)  # what clients read: the issuer of the gate's redirects
    return endpoint_mismatches(document, settings.config, settings.path_rules)


def log_mismatch(app: web.Application, mismatch: EndpointMismatch, *, consequence: str) -> None:
    """One error line per difference, the first time it is seen."""
    text = str(mismatch)
    logged = app[ENDPOINT_MISMATCHES_LOGGED]
    if text in logged:
        return
    logged.add(text)
    log.error(
        f"{mismatch.key} disagrees with the upstream's metadata; {consequence}",
        extra={
            "fields": {
                "key": mismatch.key,
                "configured": mismatch.configured,
                mismatch.where: mismatch.advertised,
            }
        },
    )


async def endpoint_problems(app: web.Application) -> list[str]:
    """``readyz``'s reasons: one per guarded path the upstream does not use. Once
    they agree again, a later difference is logged again."""
    mismatches = await read_mismatches(app)
    if mismatches is None:
        return []
    if not mismatches:
        app[ENDPOINT_MISMATCHES_LOGGED].clear()
    for mismatch in mismatches:
        log_mismatch(app, mismatch, consequence="not ready")
    return [str(mismatch) for mismatch in mismatches]


async def endpoints_at_start(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: refuse to start when the upstream advertises other endpoints."""
    mismatches = await read_mismatches(app)
    if mismatches is None:
        log.warning(
            "the upstream's metadata cannot be read now; readyz compares the guarded paths "
            "with it once it can",
            extra={"fields": {"metadata": METADATA_PATH}},
        )
    elif mismatches:
        for mismatch in mismatches:
            log_mismatch(app, mismatch, consequence="refusing to start")
        raise StartupError("; ".join(str(mismatch) for mismatch in mismatches))
    yield
