"""Client connections: a header timeout, a cap on how many are open, quiet accept errors.

Why: a connection that sent nothing, or stopped in the
middle of its headers, was kept forever; 500 of them survived 90 s, and with a
lowered descriptor limit the gate stopped answering health checks and wrote 35 MB
of accept errors in 20 s. Three rules, as nginx has them
(``client_header_timeout``, ``keepalive_timeout``, ``worker_connections``):

* **idle**: a connection waiting for its first or next request is closed after
  ``server.idle_timeout`` (aiohttp's keep-alive timeout, which it arms from the
  moment the connection opens);
* **headers**: once a request's first bytes arrived, its headers must be complete
  within ``server.header_timeout``; a slow-headers client is closed;
* **cap**: at most ``server.max_connections`` are open. One more makes room by
  closing the oldest connection still waiting for its headers (slowloris sockets go
  first, requests in progress are never cut); when every connection is busy, the
  new one is closed at once. The open-file limit is raised to fit the cap, and the
  cap lowered (with a log line) when the limit cannot be raised, so ``accept()``
  does not run out of descriptors in the first place.

``accept()`` errors that still happen (EMFILE from another cause) are logged at most
once every ten seconds, with how many were not logged.

This module reads two private attributes of aiohttp's ``RequestHandler``
(``_messages``, ``_request_in_progress``; checked on aiohttp 3.14) and extends its
``finish_response``; the real-socket tests in ``tests/serving/test_connections.py`` and
``tests/web/test_stalled_bodies.py`` fail if an aiohttp upgrade changes them.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from consentgate.web.guards.malformed import CleanErrorsRequestHandler

log = logging.getLogger("consentgate")

#: Descriptors kept free for the upstream pool's connections, the store, logs.
FD_RESERVE: Final = 64
ACCEPT_ERROR_INTERVAL: Final = 10.0


class ConnectionGuard:
    """The open client connections, oldest first, and the cap on them."""

    def __init__(self, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.evicted = 0
        self._open: dict[GuardedRequestHandler, None] = {}

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, handler: GuardedRequestHandler) -> None:
        self._open[handler] = None
        if len(self._open) <= self.max_connections:
            return
        victim = next(
            (h for h in self._open if h is not handler and h.waiting_for_headers()), handler
        )
        self.evicted += 1
        if self.evicted == 1 or self.evicted % 1000 == 0:
            log.warning(
                "connection limit reached; closing a connection that sent no request",
                extra={"fields": {"max_connections": self.max_connections, "closed": self.evicted}},
            )
        self._open.pop(victim, None)
        victim.force_close()

    def closed(self, handler: GuardedRequestHandler) -> None:
        self._open.pop(handler, None)


class GuardedRequestHandler(CleanErrorsRequestHandler):
    """aiohttp's handler plus the header timeout and the connection cap (and a quiet
    400 for a request it cannot parse, :mod:`consentgate.web.guards.malformed`)."""

    guard: ConnectionGuard
    _header_timer: asyncio.TimerHandle | None = None

    def waiting_for_headers(self) -> bool:
        """No request is being handled and none is queued: the client owes us headers."""
        return not self._request_in_progress and not self._messages

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.guard.opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_header_timer()
        self.guard.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.waiting_for_headers():
            if self._header_timer is None and self.transport is not None:
                loop = asyncio.get_running_loop()
                self._header_timer = loop.call_later(self.guard.header_timeout, self._expire)
        else:
            self._stop_header_timer()

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """Send the response; after the gate's own 408 (a request body that stopped
        arriving, ``server.body_timeout``), close the connection at once instead of
        aiohttp's lingering close, which would wait up to 10 s more for the rest of
        that body (the client that stalled keeps its connection no longer)."""
        result = await super().finish_response(request, resp, start_time)
        if resp.status == 408 and not resp.keep_alive:
            self.force_close()
        return result

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self.waiting_for_headers():
            self.force_close()


class GuardedServer(web.Server):
    """``web.Server`` whose connections are :class:`GuardedRequestHandler`s."""

    guard: ConnectionGuard

    def __call__(self) -> RequestHandler:
        handler = GuardedRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.guard = self.guard
        return handler


class GuardedAppRunner(web.AppRunner):
    """``web.AppRunner`` serving through a :class:`GuardedServer`."""

    def __init__(self, app: web.Application, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.guard = guard

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds the Server itself (Application._make_handler); giving it our
        # subclass afterwards keeps every option aiohttp set on it.
        server.__class__ = GuardedServer
        server.guard = self.guard  # type: ignore[attr-defined]
        return server


def fit_descriptor_limit(max_connections: int, upstream_connections: int) -> int:
    """Raise the soft open-file limit as far as needed (up to the hard one) and return
    the connection cap that fits in it."""
    needed = max_connections + upstream_connections + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return max_connections
    fitting = max(soft - upstream_connections - FD_RESERVE, 1)
    if fitting < max_connections:
        log.warning(
            "server.max_connections lowered to fit the open-file limit",
            extra={
                "fields": {
                    "configured": max_connections,
                    "effective": fitting,
                    "open_file_limit": soft,
                    "fix": "raise LimitNOFILE / ulimit -n, or lower upstream.max_connections",
                }
            },
        )
        return fitting
    return max_connections


class AcceptErrorLimiter:
    """A loop exception handler that logs ``accept()`` failures at most every 10 s."""

    def __init__(
        self,
        previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._previous = previous
        self._clock = clock
        self._last = -ACCEPT_ERROR_INTERVAL
        self.suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if not message.startswith("socket.accept() out of system resource"):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = self._clock()
        if now - self._last < ACCEPT_ERROR_INTERVAL:
            self.suppressed += 1
            return
        exc = context.get("exception")
        log.error(
            "cannot accept connections: out of descriptors or memory",
            extra={
                "fields": {
                    "error": repr(exc) if exc is not None else message,
                    "not_logged_since_last": self.suppressed,
                }
            },
        )
        self._last = now
        self.suppressed = 0
