"""Requests that end before their response: the client went away, or the shutdown
grace ran out.

Neither is a bug, so neither is an ERROR with a traceback: a client that drops its
connection (aiohttp cancels the handler, ``handler_cancellation``, or a write
raises ``ClientConnectionResetError``) is one INFO line with what was sent, and an
access line with status 499; a request the shutdown abandons is one INFO line and
an access line marked ``ended=shutdown``. Anything else keeps its traceback.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from consentgate.core.trust.redact import redact_target
from consentgate.web.access import CLIENT_CLOSED, access_fields, write_access_line
from consentgate.web.appkeys import IN_FLIGHT, REQUEST_ID, SENDING, SETTINGS

log = logging.getLogger("consentgate")


def why_ended_early(request: web.Request) -> str | None:
    """``client`` when the connection is gone, ``shutdown`` when the gate is stopping,
    None when neither explains an abandoned handler (then it is a bug)."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return "client"
    if request.app[IN_FLIGHT].stopping:
        return "shutdown"
    return None


def report_ended_early(request: web.Request, why: str, started: float) -> None:
    """One INFO line and one access line for a request abandoned for ``why``."""
    sending = request.get(SENDING)
    sent = sending.sent if sending is not None else 0
    stage = "sending the response" if sending is not None and sending.started else "before it"
    log.info(
        "client went away" if why == "client" else "request cut at shutdown",
        extra={
            "fields": {
                "request_id": request.get(REQUEST_ID, "-"),
                "path": redact_target(request.raw_path),
                "while": stage,
                "bytes": sent,
            }
        },
    )
    if request[SETTINGS].config.log.access_log:
        if why == "client":
            status = CLIENT_CLOSED
        else:
            status = sending.status if sending is not None and sending.started else 503
        fields = access_fields(request, status, sent, time.monotonic() - started, why)
        write_access_line(request, fields)
