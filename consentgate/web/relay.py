"""The streaming reverse proxy: every request the gate does not answer itself.

The rules, each from a bug some proxy shipped (see docs/references.md, "Proxy
correctness"):

* one shared pool to the upstream (:class:`~consentgate.upstream.upstream_client.Upstream`,
  with no cookie jar: a jar would carry one user's upstream cookies into another
  user's request);
* ``auto_decompress=False`` on the server, and nothing decompressed on the way
  back (:mod:`~consentgate.upstream.pool`), so bodies and ``Content-Encoding`` agree;
* the raw path and query forwarded byte-exact (written as received), or a
  percent-encoded ``redirect_uri`` gets re-quoted;
* bodies streamed both ways, a body sent only when the request has one;
* no total timeout: the response headers must arrive within ``read_timeout``
  after the request body was sent, but a body or an event stream may take as long
  as it takes, written chunk by chunk as it arrives (SSE, MCP streamable HTTP);
* a request body is waited for before an upstream connection is taken (a small one
  whole, a larger one until its first bytes), and may pause at most
  ``server.body_timeout`` (408 after, nginx's ``client_body_timeout``): a head that
  announces a body and sends none never holds a pooled connection;
* one client address uses at most its share of the pool
  (``upstream.max_connections_per_address``, :mod:`~consentgate.upstream.shares`); the
  excess gets 503 with ``Retry-After`` at once rather than a queue;
* redirects are never followed, they are the client's business;
* 502 (unreachable) and 504 (timeout) only before the response started; after
  that the client connection is aborted so the truncation is visible;
* a client that disconnects cancels its upstream request (the server runs with
  ``handler_cancellation=True``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import StreamReader, web
from multidict import CIMultiDict, CIMultiDictProxy

from consentgate.core.oauth.oauth_errors import TemporarilyUnavailable
from consentgate.core.trust import forwarding
from consentgate.core.trust.redact import redact_target
from consentgate.upstream.failures import UpstreamConnectError, UpstreamError
from consentgate.upstream.responses import UpstreamResponse
from consentgate.web.appkeys import (
    CLIENT_IP,
    IN_FLIGHT,
    METRICS,
    PEER_IP,
    REQUEST_ID,
    SENDING,
    SETTINGS,
    UPSTREAM,
    UPSTREAM_LOG,
    UPSTREAM_SECONDS,
)
from consentgate.web.guards.bodies import RequestBodyStalled
from consentgate.web.guards.inflight import Sending
from consentgate.web.relay_deadlines import HeaderDeadline, IdleDeadline
from consentgate.web.rendering.pages import error_response

log = logging.getLogger("consentgate")

_NO_BODY_STATUSES = frozenset({204, 304})
#: The ``Server`` header of every response: no Python or aiohttp version for a scanner
#: to match, and the upstream's own (uvicorn, ...) is replaced too, as nginx does.
SERVER_HEADER = "consentgate"
#: A request body with a ``Content-Length`` up to this is read whole before an upstream
#: connection is taken (and sent framed by its length, retried like a body in hand);
#: a larger one, or one without a length, until its first bytes.
SMALL_BODY = 64 * 1024
#: What a request over its address's share of the upstream pool is told (seconds).
SHARE_RETRY_AFTER = 1


class UpstreamFailure(Exception):
    """The upstream could not be reached (502), did not answer in time (504), or this
    client address already uses its share of the pool (503, ``retry_after``)."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class RequestTooLarge(Exception):
    """The request body exceeded ``server.max_body_size``."""


@dataclass
class _BodyPump:
    """Streams the client's body upstream after its ``first`` bytes, counting it
    against the size limit; a pause of ``pause`` seconds in one wait for the client
    ends it (:class:`RequestBodyStalled`). It runs in the pool's sender task, so its
    deadline is that task's (one timer for the whole body, :class:`IdleDeadline`)."""

    request: web.Request
    first: bytes
    limit: int
    pause: float
    on_sent: Callable[[], None]
    too_large: bool = False
    stalled: bool = False

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.first
        content = self.request.content
        total = len(self.first)
        try:
            with IdleDeadline(self.request.app[UPSTREAM].loop, self.pause) as deadline:
                while chunk := await _client_bytes(content, deadline):
                    total += len(chunk)
                    if total > self.limit:
                        self.too_large = True
                        raise RequestTooLarge
                    yield chunk
        except TimeoutError:
            self.stalled = True
            raise RequestBodyStalled from None
        self.on_sent()


async def _client_bytes(content: StreamReader, deadline: IdleDeadline) -> bytes:
    """The next bytes of the client's body, ``b""`` at its end: what is buffered at
    once, else a wait for the client, the only time that counts against ``deadline``."""
    chunk = content.read_nowait()
    if chunk or content.at_eof():
        return chunk
    deadline.waiting()
    chunk = await content.readany()
    deadline.done_waiting()
    return chunk


async def _body_start(
    request: web.Request, length: int | None, limit: int, pause: float
) -> tuple[bytes, bool]:
    """The request body's first bytes and whether they are all of it, read before any
    upstream connection is taken: a body with a ``Content-Length`` up to
    :data:`SMALL_BODY` whole, any other until its first bytes. Each wait for the
    client may last ``pause`` seconds (then :class:`RequestBodyStalled`)."""
    content = request.content
    whole = length is not None and length <= SMALL_BODY
    chunks: list[bytes] = []
    total = 0
    try:
        with IdleDeadline(request.app[UPSTREAM].loop, pause) as deadline:
            while chunk := await _client_bytes(content, deadline):
                total += len(chunk)
                if total > limit:
                    raise RequestTooLarge
                chunks.append(chunk)
                if not whole:
                    break
    except TimeoutError:
        raise RequestBodyStalled from None
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return data, content.at_eof()


def upstream_headers(request: web.Request) -> CIMultiDict[str]:
    """The headers the upstream receives for this client request."""
    settings = request[SETTINGS]
    config = settings.config
    return forwarding.upstream_request_headers(
        request.headers,
        peer=request[PEER_IP],
        trusted=config.server.trusted_proxies,
        scheme=request.scheme,
        host=request.host,
        public_host=settings.public_host,
        request_id=request[REQUEST_ID],
        own_cookie_prefixes=settings.cookie_prefixes,
        preserve_host=config.upstream.host_header == "preserve",
    )


class UpstreamExchange:
    """One request sent upstream; use as ``async with`` to release the connection.

    Raises :class:`UpstreamFailure`, :class:`RequestTooLarge` or
    :class:`~consentgate.web.guards.bodies.RequestBodyStalled` before any byte was sent to
    the client, so callers can still answer with an error page. From the moment it
    asks the pool until it is released, the exchange counts against its client
    address's share (:mod:`~consentgate.upstream.shares`).
    """

    def __init__(
        self,
        request: web.Request,
        target: str,
        *,
        method: str | None = None,
        forward_body: bool = True,
        headers: CIMultiDict[str] | None = None,
    ) -> None:
        self._request = request
        self._target = target
        self._method = method or request.method
        self._forward_body = forward_body
        self._headers = headers
        self._response: UpstreamResponse | None = None
        #: The client's address group while it counts against its share.
        self._group: str | None = None

    async def __aenter__(self) -> UpstreamResponse:
        request = self._request
        config = request[SETTINGS].config
        upstream = request.app[UPSTREAM]
        headers = self._headers if self._headers is not None else upstream_headers(request)
        loop = upstream.loop
        read_timeout = upstream.read_timeout
        pump: _BodyPump | None = None
        data: AsyncIterator[bytes] | bytes | None = None
        if self._forward_body and request.body_exists:
            server = config.server
            length = request.content_length
            if length is not None and length > server.max_body_size:
                raise RequestTooLarge
            content = request.content
            if length is not None and content.is_eof() and content.exception() is None:
                # The whole (Content-Length framed, within the limit) body came with
                # the headers, as small bodies do: send it in one piece.
                data = content.read_nowait()
            else:
                # No upstream connection is taken for a body that has not started.
                data, whole = await _body_start(
                    request, length, server.max_body_size, server.body_timeout
                )
                if not whole:
                    pump = _BodyPump(
                        request, data, server.max_body_size, server.body_timeout, _nothing
                    )
                    data = pump.chunks()
        else:
            headers.popall("Content-Length", None)
        group = forwarding.address_group(request[CLIENT_IP])
        if not upstream.shares.take(group, config.upstream.address_share):
            _report_share_reached(request, group)
            raise UpstreamFailure(
                503,
                "too many requests from this address are in progress; try again shortly",
                retry_after=SHARE_RETRY_AFTER,
            )
        self._group = group
        started = time.perf_counter()
        try:
            # The response headers are due read_timeout after the request body was
            # sent: from now with the body in hand, else from when the pump sent its
            # last byte.
            with HeaderDeadline(
                loop, None if pump is not None else loop.time() + read_timeout
            ) as deadline:
                if pump is not None:
                    pump.on_sent = lambda: deadline.reschedule(loop.time() + read_timeout)
                self._response = await upstream.pool.request(
                    self._method, self._target, headers.items(), data
                )
        except BaseException as exc:
            self._give_back()
            _raise_failure(request, exc, pump)
            raise
        finally:
            request[UPSTREAM_SECONDS] = time.perf_counter() - started
        request.app[METRICS].relayed(self._response.status, request[UPSTREAM_SECONDS])
        return self._response

    def _give_back(self) -> None:
        group = self._group
        if group is not None:
            self._group = None
            self._request.app[UPSTREAM].shares.give_back(group)

    async def __aexit__(self, *exc_info: object) -> None:
        if self._response is not None:
            self._response.release()
            self._response = None
        self._give_back()


def _nothing() -> None:
    """The pump's ``on_sent`` until the header deadline exists."""


def _raise_failure(request: web.Request, exc: BaseException, pump: _BodyPump | None) -> None:
    """What the exchange's caller is told of ``exc``: an :class:`UpstreamFailure` for the
    upstream's errors, the body's own errors as they are; returns for the rest (a
    cancellation), which the caller raises again."""
    if isinstance(exc, asyncio.CancelledError):
        return
    if pump is not None and (pump.stalled or pump.too_large):
        # The body failed first; whatever the upstream did after is its consequence.
        raise RequestBodyStalled if pump.stalled else RequestTooLarge from None
    if isinstance(exc, RequestTooLarge | RequestBodyStalled):
        return
    if isinstance(exc, TimeoutError):
        _report_outage(request, "timeout", exc)
        raise UpstreamFailure(504, "the upstream did not answer in time") from None
    if isinstance(exc, UpstreamConnectError):
        if isinstance(exc.os_error, TimeoutError):  # the connect timeout
            _report_outage(request, "timeout", exc)
            raise UpstreamFailure(504, "the upstream did not answer in time") from None
        _report_outage(request, "unreachable", exc)
        raise UpstreamFailure(502, "the upstream is unreachable") from None
    if isinstance(exc, UpstreamError):
        request.app[METRICS].upstream_errors["failed"].inc()
        log.warning(
            "upstream request failed",
            extra={"fields": {"request_id": request[REQUEST_ID], "error": type(exc).__name__}},
        )
        raise UpstreamFailure(502, "the upstream failed to answer") from None


def upstream_failure_response(
    request: web.Request, exc: UpstreamFailure, code: str | None = None
) -> web.Response:
    """The error page or JSON for ``exc``, with ``Retry-After`` when it has one."""
    response = error_response(
        request, exc.status, code or _error_code(exc.status), exc.reason + "."
    )
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def response_headers(request: web.Request, upstream: UpstreamResponse) -> CIMultiDict[str]:
    """The upstream response's headers as the client should see them."""
    return forwarding.downstream_response_headers(
        upstream.headers,
        upstream_origin=request.app[UPSTREAM].base_url,
        public_origin=request[SETTINGS].config.server.public_url,
    )


class _CoalescedResponse(web.StreamResponse):
    """A relayed response whose status line and headers leave with its first body bytes.

    Used only when those bytes are already in hand (or when there is no body), so
    nothing waits for them: one ``send`` instead of two, and the client wakes up
    once. aiohttp's ``StreamResponse`` otherwise sends the headers on ``prepare``
    on their own (``web.Response`` coalesces the same way). With an aiohttp that
    lacks the attribute this is a plain ``StreamResponse``.
    """

    _send_headers_immediately = False


async def stream_response(
    request: web.Request,
    upstream: UpstreamResponse,
    headers: CIMultiDict[str] | CIMultiDictProxy[str],
    *,
    status: int | None = None,
) -> web.StreamResponse:
    """Send the upstream response to the client, chunk by chunk as it arrives.

    Event streams have no read timeout (an idle stream may last minutes); other
    bodies may stall at most ``read_timeout`` between chunks. Bytes already
    received are written at once, without waiting (no timer is armed for them);
    the headers are never held back waiting for a body.
    """
    content = upstream.content
    status = status or upstream.status
    sending = request[SENDING] = Sending(status=status)
    no_body = request.method == "HEAD" or status in _NO_BODY_STATUSES
    first = b""
    complete = no_body  # the whole response is in hand: one write, no timer
    if not no_body:
        try:
            first = content.read_nowait()
        except UpstreamError:
            pass  # raised again by the read below, once the response started
        else:
            complete = content.at_eof()
    response: web.StreamResponse = (
        _CoalescedResponse(status=status, reason=None)
        if first or complete
        else web.StreamResponse(status=status, reason=None)
    )
    out = response.headers
    out.extend(headers)
    # What serving/application.in_context sets on every response that is not streamed.
    out["X-Request-Id"] = request[REQUEST_ID]
    out["Server"] = SERVER_HEADER
    await response.prepare(request)
    sending.started = True
    if complete:
        await response.write_eof(first)
        sending.sent = len(first)
        return response
    content_type = upstream.headers.get("Content-Type", "")
    event_stream = content_type.startswith("text/event-stream")
    upstream_pool = request.app[UPSTREAM]
    # Event streams have no idle limit; other bodies may pause read_timeout per wait.
    idle: contextlib.nullcontext[None] | IdleDeadline = (
        contextlib.nullcontext()
        if event_stream
        else IdleDeadline(upstream_pool.loop, upstream_pool.read_timeout)
    )
    with request.app[IN_FLIGHT].streaming(sending):
        try:
            with idle as deadline:
                if first:
                    await response.write(first)
                    sending.sent += len(first)
                while True:
                    chunk = content.read_nowait()
                    if not chunk:
                        if content.at_eof():
                            break
                        if deadline is None:
                            chunk = await content.readany()
                        else:
                            deadline.waiting()
                            chunk = await content.readany()
                            deadline.done_waiting()
                        if not chunk:
                            break
                    await response.write(chunk)
                    sending.sent += len(chunk)
        except asyncio.CancelledError:
            if not sending.cut:
                raise  # the client went away: serving/application.in_context says so
            _uncancel()
            await _end_cut_stream(request, response, sending, event_stream=event_stream)
            return response
        except ConnectionResetError:
            raise  # writing to a client that went away: serving/application.in_context says so
        except (UpstreamError, TimeoutError) as exc:
            # The status line is gone; the only honest signal left is an aborted connection.
            log.warning(
                "upstream response broke off",
                extra={"fields": {"request_id": request[REQUEST_ID], "error": type(exc).__name__}},
            )
            if request.transport is not None:
                request.transport.abort()
            return response
    await response.write_eof()
    return response


#: The last bytes of an event stream cut at shutdown: an SSE comment (WHATWG HTML,
#: "Parsing an event stream": a line starting with a colon is ignored), so that the
#: client sees why its stream ended and reconnects with its Last-Event-ID.
SHUTDOWN_COMMENT = b": consentgate is shutting down\n\n"


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _end_cut_stream(
    request: web.Request, response: web.StreamResponse, sending: Sending, *, event_stream: bool
) -> None:
    """End a stream the shutdown cut as cleanly as its framing allows, and say so.

    A chunked (or close-delimited) body gets its proper end, after a last SSE comment
    for an event stream; a body with a Content-Length cannot end early without
    lying about its length, so its connection is aborted and the client sees the
    truncation (RFC 9112 section 8)."""
    clean = "Content-Length" not in response.headers
    with contextlib.suppress(ConnectionError):
        if clean:
            if event_stream:
                await response.write(SHUTDOWN_COMMENT)
                sending.sent += len(SHUTDOWN_COMMENT)
            await response.write_eof()
        elif request.transport is not None:
            request.transport.abort()
    log.info(
        "response cut at shutdown",
        extra={
            "fields": {
                "request_id": request[REQUEST_ID],
                "path": redact_target(request.raw_path),
                "bytes": sending.sent,
                "ending": "clean" if clean else "aborted",
            }
        },
    )


async def relay(request: web.Request, target: str | None = None) -> web.StreamResponse:
    """Relay the request upstream to ``target`` (default: its raw path and query)."""
    try:
        async with UpstreamExchange(request, target or request.raw_path) as upstream:
            return await stream_response(request, upstream, response_headers(request, upstream))
    except RequestTooLarge:
        return error_response(
            request,
            413,
            "request_too_large",
            "The request body is larger than this service accepts.",
        )
    except UpstreamFailure as exc:
        return upstream_failure_response(request, exc)


def _report_outage(request: web.Request, kind: str, exc: BaseException) -> None:
    """One WARNING naming the error class (a refused connection, a DNS failure, no
    answer in time), at most one per kind every interval: an upstream that is down
    must show in the log, not only as 502 and 504 access lines, without one line per
    request."""
    request.app[METRICS].upstream_errors[kind].inc()
    left_out = request.app[UPSTREAM_LOG].allow(kind)
    if left_out is None:
        return
    cause = getattr(exc, "os_error", None) or exc.__cause__ or exc
    reason = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    log.warning(
        "upstream unavailable",
        extra={
            "fields": {
                "request_id": request[REQUEST_ID],
                "kind": kind,
                "error": type(exc).__name__,
                "reason": reason,
                "not_logged_since_last": left_out,
            }
        },
    )


def _report_share_reached(request: web.Request, group: str) -> None:
    """One WARNING at most every interval while client addresses meet their share of
    the upstream pool: a flood from one address, or many clients behind one proxy
    that is not in ``server.trusted_proxies``."""
    request.app[METRICS].upstream_errors["address_share"].inc()
    left_out = request.app[UPSTREAM_LOG].allow("address_share")
    if left_out is None:
        return
    log.warning(
        "a client address uses its whole share of the upstream pool; refused with 503",
        extra={
            "fields": {
                "request_id": request[REQUEST_ID],
                "address": group,
                "share": request[SETTINGS].config.upstream.address_share,
                "not_logged_since_last": left_out,
            }
        },
    )


def _error_code(status: int) -> str:
    return {502: "bad_gateway", 503: TemporarilyUnavailable.code, 504: "gateway_timeout"}.get(
        status, "upstream_error"
    )
