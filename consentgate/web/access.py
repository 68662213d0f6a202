"""One access-log line per request, with OAuth secrets redacted.

Fields: request id, client address, method, path (query values of ``code``,
``state``, tokens and secrets replaced), status, bytes sent, duration, and the
time spent waiting for the upstream. Headers are never logged, so Authorization,
Cookie and Set-Cookie cannot leak through this logger.

A request that did not end normally says how in ``ended``: ``client`` (the client
went away first; status 499, as nginx logs it) or ``shutdown`` (the gate's
shutdown grace ran out; the status of what was begun, or 503 when nothing was).
aiohttp writes the line of a request whose handler returned; the gate writes the
line of one whose handler was abandoned (:mod:`consentgate.web.guards.endings`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from consentgate.core.trust.redact import redact_target
from consentgate.logs.line_writers import AccessLines
from consentgate.logs.loggers import ACCESS
from consentgate.web.appkeys import ACCESS_LINES, CLIENT_IP, REQUEST_ID, SENDING, UPSTREAM_SECONDS

#: The status logged for a request whose client went away before its end.
CLIENT_CLOSED = 499


def access_fields(
    request: web.BaseRequest, status: int, sent: int, seconds: float, ended: str | None = None
) -> dict[str, Any]:
    upstream = request.get(UPSTREAM_SECONDS)
    fields: dict[str, Any] = {
        "request_id": request.get(REQUEST_ID, "-"),
        "client": request.get(CLIENT_IP, "-"),
        "method": request.method,
        "path": redact_target(request.raw_path),
        "status": status,
        "bytes": sent,
        "duration_ms": round(seconds * 1000, 2),
        "upstream_ms": round(upstream * 1000, 2) if upstream is not None else None,
    }
    if ended is not None:
        fields["ended"] = ended
    return fields


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access logger for the gate.

    Given :class:`~consentgate.logs.line_writers.AccessLines` in place of a logger (``serve``
    does, through :func:`~consentgate.serving.server.runner_options`), it writes the
    lines itself, in batches, with no ``logging`` record per request.
    Given the ``consentgate.access`` logger (the tests, an embedding application),
    it logs structured records to it, which ``caplog`` and any handler can see.
    """

    def __init__(self, logger: logging.Logger | AccessLines, log_format: str) -> None:
        self._lines: AccessLines | None = None
        if isinstance(logger, AccessLines):
            self._lines, logger = logger, _NULL
        super().__init__(logger, log_format)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        lines = self._lines
        if lines is None:
            sending = request.get(SENDING)
            ended = "shutdown" if sending is not None and sending.cut else None
            fields = access_fields(request, response.status, response.body_length, time, ended)
            self.logger.info("request", extra={"fields": fields})
            return
        if not lines.enabled:  # switched off by a reload
            return
        # What ``request[key]`` reads: aiohttp's dict behind the request's mapping
        # (``_state``, aiohttp 3.x; a test pins it) when it has one, else the request.
        # ``request.get`` is ``Mapping.get`` in Python, a ``KeyError`` raised and caught
        # for each key a request lacks (~0.4 µs each, four keys).
        state: Mapping[Any, Any] = getattr(request, "_state", request)
        if type(state) is not dict:
            state = request
        sending = state.get(SENDING)
        if sending is not None and sending.cut:
            lines.write(
                access_fields(request, response.status, response.body_length, time, "shutdown")
            )
            return
        lines.ended(
            state.get(REQUEST_ID, "-"),
            state.get(CLIENT_IP, "-"),
            request.method,
            request.raw_path,
            response.status,
            response.body_length,
            time,
            state.get(UPSTREAM_SECONDS),
        )

    @property
    def enabled(self) -> bool:
        # aiohttp reads this once per connection; batched lines are switched per
        # request instead (``AccessLines.enabled``), so a reload reaches open connections.
        return self._lines is not None or self.logger.isEnabledFor(logging.INFO)


#: The logger an :class:`AccessLogger` writing :class:`AccessLines` hands its base.
_NULL = logging.getLogger("consentgate.access.batched")


def write_access_line(request: web.Request, fields: dict[str, Any]) -> None:
    """An access line written by the gate itself (a request abandoned by its handler,
    :mod:`consentgate.web.guards.endings`), through the same sink as aiohttp's lines."""
    lines = request.app.get(ACCESS_LINES)
    if lines is not None:
        lines.write(fields)
    else:
        logging.getLogger(ACCESS).info("request", extra={"fields": fields})
