"""One keep-alive HTTP/1.1 connection to the upstream, parsed by llhttp.

It carries one exchange at a time: writes the request head (and a body in hand or a
stream, chunked when it has no length), parses the answer strictly (``httptools``:
a response with both ``Content-Length`` and ``Transfer-Encoding``, duplicate
lengths, bare LF line ends or obsolete line folding is refused, not guessed at),
skips 1xx interim responses, and tells the pool whether it may be reused: never
after ``HEAD``, ``204`` or ``304``, after bytes beyond the end of an answer, or when
the answer came before the whole request was written (an upstream that breaks
framing must not have its late bytes read as the next client's answer). The pool
(:mod:`consentgate.upstream.pool`) opens, hands out and closes connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from consentgate.upstream.failures import (
    UpstreamDisconnected,
    UpstreamError,
    UpstreamProtocolError,
)
from consentgate.upstream.responses import MAX_HEADER_BYTES, ResponseBody, UpstreamResponse

if TYPE_CHECKING:
    from consentgate.upstream.pool import UpstreamPool


class Connection(asyncio.Protocol):
    """One connection to the upstream, carrying one exchange at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        #: Whether the pool counts it among its open connections (from a whole connect).
        self.counted = False
        self.reused = False
        self.idle_since = 0.0
        self._paused_reading = False
        self._paused_writing = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._begin_exchange("GET")

    def _begin_exchange(self, method: str) -> None:
        self._method = method
        self._head_future: asyncio.Future[UpstreamResponse] | None = None
        self._names: list[bytes] = []
        self._values: list[bytes] = []
        self._header_bytes = 0
        self._reason = b""
        self._body: ResponseBody | None = None
        self._complete = False
        self._keep_alive = False
        self._delimited_by_close = False
        self._received = False
        self._active = False

    # -- the exchange ---------------------------------------------------------------
    def start(self, method: str, head: bytes) -> asyncio.Future[UpstreamResponse]:
        """Send the request head (and a body in hand); the future has the response."""
        if self.closed:  # closed by the upstream while it was handed over
            raise UpstreamDisconnected("the upstream closed the connection before the request")
        self._begin_exchange(method)
        self._active = True
        future = self._head_future = self.loop.create_future()
        self._transport().write(head)
        return future

    async def send_stream(self, chunks: AsyncIterator[bytes], chunked: bool) -> None:
        transport = self._transport()
        async for chunk in chunks:
            if not chunk:
                continue
            if self.closed:
                raise UpstreamDisconnected("the upstream closed the connection during the body")
            if chunked:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                transport.write(chunk)
            if self._paused_writing:
                await self._drain()
        if chunked and not self.closed:
            transport.write(b"0\r\n\r\n")

    async def _drain(self) -> None:
        if self.closed:
            raise UpstreamDisconnected("the upstream closed the connection during the body")
        waiter = self._drain_waiter = self.loop.create_future()
        await waiter

    def release(self) -> None:
        """The caller is done with the response: reuse the connection or close it.

        Reused only after a whole response whose framing leaves nothing in doubt, and
        once the whole request was written: an answer that came while part of the
        body still waited in the write buffer means the upstream did not read that
        body, and would read what is left of it as the next request (a request
        smuggled in a body, its answer given to the next client)."""
        self._active = False
        if (
            self._complete
            and self._keep_alive
            and not self.closed
            and self.transport is not None
            and not self.transport.get_write_buffer_size()
        ):
            self._begin_exchange("GET")
            self.reused = True
            self.pool._put_idle(self)
        else:
            self.close()

    def close(self) -> None:
        """Close it now; a response still arriving ends with an error."""
        if self.transport is not None and not self.closed:
            self.transport.close()
        self._lost(None, abandoned=True)

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def _transport(self) -> asyncio.Transport:
        if self.transport is None:  # pragma: no cover - the pool hands out connected ones
            raise UpstreamDisconnected("not connected")
        return self.transport

    def data_received(self, data: bytes) -> None:
        if not self._active or self._complete:
            # Bytes nobody asked for (a 408 sent to an idle connection, say, or more
            # than a Content-Length announced): this connection's framing can no longer
            # be trusted, and they must never be read as the next request's answer.
            if self._active:
                self._keep_alive = False  # the response is whole; release closes it
            else:
                self.close()
            return
        self._received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__  # what a callback below raised
            if isinstance(cause, UpstreamError):
                self._error(cause)
            else:  # pragma: no cover - the callbacks raise nothing else
                self._error(UpstreamProtocolError(f"malformed response: {cause!r}"))
        except httptools.HttpParserUpgrade:
            self._error(UpstreamProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._error(UpstreamProtocolError(f"malformed response: {exc}"))

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost ends the response

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc, abandoned=False)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def pause_reading(self) -> None:
        if not self._paused_reading and self.transport is not None and not self.closed:
            self._paused_reading = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused_reading and self.transport is not None and not self.closed:
            self._paused_reading = False
            self.transport.resume_reading()

    # -- llhttp callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._complete:
            # More bytes after a whole response to a request sent alone: not ours.
            raise UpstreamProtocolError("the upstream sent more than one response")

    def on_status(self, status: bytes) -> None:
        self._reason += status
        self._count(len(status))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._names.append(name)
        self._values.append(value)
        self._count(len(name) + len(value) + 4)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            raise UpstreamProtocolError(
                f"the response headers are longer than {MAX_HEADER_BYTES} bytes"
            )

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            if status == 101:
                raise UpstreamProtocolError("the upstream switched protocols unasked")
            # An interim response (100 Continue, 103 Early Hints): not relayed.
            self._names.clear()
            self._values.clear()
            self._reason = b""
            self._header_bytes = 0
            return
        headers: CIMultiDict[str] = CIMultiDict()
        framed = False
        for name, value in zip(self._names, self._values, strict=True):
            text = name.decode("latin-1")
            headers.add(text, value.decode("utf-8", "surrogateescape"))
            lowered = text.lower()
            if lowered == "content-length" or (
                lowered == "transfer-encoding" and b"chunked" in value.lower()
            ):
                framed = True
        self._keep_alive = self.parser.should_keep_alive()
        body = self._body = ResponseBody(self)
        response = UpstreamResponse(
            status,
            self._reason.decode("latin-1"),
            CIMultiDictProxy(headers),
            body,
            self,
        )
        if self._method == "HEAD":
            # llhttp would wait for the body a Content-Length announces: the answer
            # ends here, and the connection is not reused.
            self._complete = True
            self._keep_alive = False
            body._feed_eof()
        elif status in (204, 304):
            # No body by definition (RFC 9110 sections 15.3.5, 15.4.5), yet servers that
            # write one anyway exist; bytes arriving after the next request was sent
            # would be read as its answer. Not reused, as after HEAD.
            self._keep_alive = False
        else:
            self._delimited_by_close = not framed
        future = self._head_future
        if future is not None and not future.done():
            future.set_result(response)

    def on_body(self, data: bytes) -> None:
        body = self._body
        if body is not None and not self._complete:
            body._feed(data)

    def on_message_complete(self) -> None:
        body = self._body
        if body is None:  # the end of an interim response
            return
        if self._complete:
            return
        self._complete = True
        body._feed_eof()

    # -- endings ------------------------------------------------------------------------
    def _error(self, exc: UpstreamError) -> None:
        future = self._head_future
        if future is not None and not future.done():
            future.set_exception(exc)
        elif self._body is not None:
            self._body._fail(exc)
        self._keep_alive = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    def _lost(self, exc: BaseException | None, *, abandoned: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self._paused_reading = False
        body = self._body
        if (
            body is not None
            and not self._complete
            and self._delimited_by_close
            and exc is None
            and not abandoned
        ):
            # A body without Content-Length or chunked framing ends with the connection
            # (RFC 9112 section 6.3, rule 8).
            self._complete = True
            body._feed_eof()
        ended = UpstreamDisconnected("the upstream closed the connection before the response ended")
        future = self._head_future
        if future is not None and not future.done():
            future.set_exception(ended)
        elif body is not None and not self._complete:
            body._fail(ended)
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.counted:
            self.pool._lost(self)
