"""One access-log line per request, with OAuth secrets redacted.

Fields: request id, client address, method, path (query values of ``code``,
``state``, tokens and secrets replaced), status, bytes sent, duration, and the
time spent waiting for the upstream. Headers are never logged, so Authorization,
Cookie and Set-Cookie cannot leak through this logger.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from consentgate.core.redact import redact_target
from consentgate.web.appkeys import CLIENT_IP, REQUEST_ID, UPSTREAM_SECONDS


class AccessLogger(AbstractAccessLogger):
    """aiohttp access logger writing structured records to ``consentgate.access``."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        upstream = request.get(UPSTREAM_SECONDS)
        fields = {
            "request_id": request.get(REQUEST_ID, "-"),
            "client": request.get(CLIENT_IP, "-"),
            "method": request.method,
            "path": redact_target(request.raw_path),
            "status": response.status,
            "bytes": response.body_length,
            "duration_ms": round(time * 1000, 2),
            "upstream_ms": round(upstream * 1000, 2) if upstream is not None else None,
        }
        self.logger.info("request", extra={"fields": fields})

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
