"""Requests aiohttp cannot parse: a plain 400 and one short log line, no traceback.

aiohttp answers a request whose head it cannot read (a control character or a bare
CR in a header, an invalid header name, a line over 8190 bytes: ``BadHttpMessage``,
``LineTooLong``) before any of the gate's handlers runs. By itself it logs that as
"Error handling request" with a traceback through its ``aiohttp.server`` logger, and
the exception's message quotes the offending header line: an ``Authorization:
Bearer`` token, the consent cookie at the start of an over-long ``Cookie`` header, the
admin token of a token file saved with Windows line endings (``Bearer <token>\\r``).
It sends the same message back as the body of its 400.

A malformed request is the client's error (RFC 9110 §15.5.1), not the gate's: it gets
a short 400 that quotes nothing, the connection closes (as aiohttp closes it), and
the gate's log gets one line naming the kind of error and never a byte of the request
(the README's promise for the logs: no headers, ever). Every other error keeps aiohttp's own
handling, whose log lines pass through the redacting handler of
:func:`consentgate.logs.loggers.configure_logging`.

:class:`CleanErrorsRequestHandler` is the connection handler of every listener the
gate opens (the public one through :mod:`consentgate.serving.connections`, the admin
listener and the workers' Unix sockets through :class:`CleanErrorsAppRunner`).
"""

from __future__ import annotations

import logging
import re
from typing import Final

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger("consentgate")

#: The body of the 400: a fixed text, nothing of the request in it.
BAD_REQUEST_TEXT: Final = "400 Bad Request: the request could not be read as HTTP/1.1.\n"

#: A parser's reason is kept only when it is this plain (llhttp's reasons are fixed
#: phrases, "Invalid header value char"); anything with quotes, colons or symbols
#: may carry request bytes and is left out.
_PLAIN_REASON: Final = re.compile(r"[A-Za-z0-9 ]{1,60}")


def reason_of(exc: HttpProcessingError) -> str | None:
    """The parser's fixed phrase for ``exc`` (before its first ``:``), or None when
    that part does not look like a fixed phrase."""
    first = str(exc.message).strip().split(":", 1)[0].strip()
    return first if _PLAIN_REASON.fullmatch(first) else None


class CleanErrorsRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering an unreadable request quietly."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or not 400 <= status < 500:
            return super().handle_error(request, status, exc, message)
        # A bad method is what TLS or another protocol sent to this port looks like:
        # scanners do it all day, so (as aiohttp does) it is a debug line only.
        log.log(
            logging.DEBUG if isinstance(exc, BadHttpMethod) else logging.INFO,
            "malformed request refused",
            extra={
                "fields": {
                    "client": request.remote or "-",
                    "status": status,
                    "error": type(exc).__name__,
                    "reason": reason_of(exc),
                }
            },
        )
        response = web.Response(status=status, text=BAD_REQUEST_TEXT)
        response.force_close()
        return response


class CleanErrorsServer(web.Server):
    """``web.Server`` whose connections are :class:`CleanErrorsRequestHandler`s."""

    def __call__(self) -> RequestHandler:
        return CleanErrorsRequestHandler(self, loop=self._loop, **self._kwargs)


class CleanErrorsAppRunner(web.AppRunner):
    """``web.AppRunner`` serving through a :class:`CleanErrorsServer`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds the Server itself (Application._make_handler); changing its
        # class afterwards keeps every option aiohttp set on it.
        server.__class__ = CleanErrorsServer
        return server
