"""HTTP/1.1 to the upstream: a keep-alive connection pool and one exchange per request.

Why not ``aiohttp.ClientSession``: the relay sends every request to one origin, with
headers it has already filtered and a target it must forward byte-exact. The
session's general machinery (URL objects, cookie jar, tracing, default headers,
redirect handling, per-request timeout objects, ``ClientRequest`` and
``ClientResponse``) was about a third of the gate's CPU per relayed request
(py-spy, ``ClientSession._request`` 30 % of the samples). Here a request is
one preformatted block of bytes on a pooled connection, and the response is parsed
by llhttp (``httptools``, the parser of uvicorn and, in C, of aiohttp itself).

What this module keeps from docs/references.md, "Proxy correctness":

* no cookie jar and no decompression: bytes go through as they came;
* the target written as given (the caller's raw path and query, never re-quoted);
* a body only when there is one: ``Content-Length`` for bytes in hand, chunked for a
  stream without a length (RFC 9112 section 6.1), ``Content-Length: 0`` for a
  POST, PUT or PATCH without one (RFC 9110 section 8.6);
* no total timeout (the caller arms the header and idle deadlines);
* idle connections closed after ``keepalive_timeout``, which must stay below the
  upstream's own (uvicorn: 5 s); a request that finds its reused connection closed
  before any byte of the answer is retried once on a new connection, only when it
  is idempotent and its body is in hand (RFC 9110 section 9.2.2; nginx's
  ``proxy_next_upstream`` default, aiohttp's since 3.10).

And what llhttp gives: strict framing (a response with both ``Content-Length`` and
``Transfer-Encoding``, duplicate lengths, bare LF line ends or obsolete line folding
is refused, not guessed at: the response-splitting cases), 1xx interim responses
skipped, ``204``/``304`` without a body. A response to ``HEAD`` is complete at its
headers (llhttp cannot be told to expect no body). A connection is not reused after
``HEAD``, ``204`` or ``304`` answers, after bytes beyond the end of an answer, or
when the answer came before the whole request was written: an upstream that breaks
framing must not have its late bytes read as the next client's answer.
Response headers are limited to :data:`MAX_HEADER_BYTES`, and a body that the client
reads slower than the upstream sends pauses the upstream socket above
:data:`BUFFER_HIGH` bytes (back-pressure, as aiohttp's ``StreamReader`` does).

This module does not import aiohttp: the pool is asyncio and llhttp only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from typing import Final, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

#: Response status line and headers together may be at most this long.
MAX_HEADER_BYTES: Final = 64 * 1024
#: Bytes of a response body buffered before the upstream socket is paused.
BUFFER_HIGH: Final = 256 * 1024
#: Methods retried once on a new connection when a reused one was found closed.
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
#: Methods whose request defines content: sent ``Content-Length: 0`` without a body.
_CONTENT_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
#: A request target is origin-form or ``*`` and never holds a space or a control byte.
_BAD_TARGET: Final = re.compile(r"[\x00-\x20\x7f]")
_METHOD: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class UpstreamError(Exception):
    """The exchange with the upstream failed; ``str()`` says how."""


class UpstreamConnectError(UpstreamError):
    """No connection could be opened (refused, unresolvable, TLS, connect timeout).

    ``os_error`` is the cause, for the log line that names the error class."""

    def __init__(self, message: str, os_error: BaseException) -> None:
        super().__init__(message)
        self.os_error = os_error


class UpstreamProtocolError(UpstreamError):
    """The upstream's answer is not well-formed HTTP/1.1 (or is too large)."""


class UpstreamDisconnected(UpstreamError):
    """The connection closed before the response ended."""


class ResponseBody:
    """The body of one response as it arrives: what the relay reads.

    The reading side of ``aiohttp.StreamReader`` that the gate uses, with the same
    meanings: :meth:`read_nowait` takes whatever is buffered (maybe nothing),
    :meth:`readany` waits for something, ``b""`` at the end; an error is raised by
    the next read once the buffered bytes are taken.
    """

    __slots__ = ("_chunks", "_conn", "_eof", "_exc", "_size", "_waiter")

    def __init__(self, conn: _Connection) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._conn = conn

    # -- fed by the connection ------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > BUFFER_HIGH:
            self._conn.pause_reading()
        self._wake()

    def _feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if not self._eof:
            self._exc = exc
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- read by the relay ----------------------------------------------------------
    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    def read_nowait(self) -> bytes:
        chunks = self._chunks
        if not chunks:
            if self._exc is not None:
                raise self._exc
            return b""
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        self._conn.resume_reading()
        return data

    async def readany(self) -> bytes:
        while not self._chunks:
            if self._exc is not None:
                raise self._exc
            if self._eof:
                return b""
            waiter = self._waiter = self._conn.loop.create_future()
            await waiter
        return self.read_nowait()


class UpstreamResponse:
    """The status, headers and body of one upstream response; :meth:`release` when
    done (the connection goes back to the pool only after a complete body)."""

    __slots__ = ("_conn", "content", "headers", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: CIMultiDictProxy[str],
        content: ResponseBody,
        conn: _Connection,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self._conn: _Connection | None = conn

    @property
    def content_type(self) -> str:
        """The media type, lowercased, without parameters (``application/json``);
        ``application/octet-stream`` when absent, as aiohttp says (RFC 9110 8.3)."""
        raw = self.headers.get("Content-Type")
        if raw is None:
            return "application/octet-stream"
        return raw.partition(";")[0].strip().lower()

    def release(self) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn.release()


class _Connection(asyncio.Protocol):
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


class UpstreamPool:
    """Keep-alive connections to one origin, at most ``limit`` open at once.

    A request waits for a free connection when all ``limit`` are busy (the caller's
    deadline bounds the wait), first come first served: a released connection goes
    straight to the longest waiter, never to a request that arrives in between.
    Idle connections are reused newest first and closed after ``keepalive_timeout``
    seconds without use.
    """

    def __init__(
        self,
        origin: str,
        *,
        limit: int,
        connect_timeout: float,
        keepalive_timeout: float,
        loop: asyncio.AbstractEventLoop,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream: expected an http(s) origin, got {origin!r}")
        self.loop = loop
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        default_port = (parts.scheme == "https" and self._port == 443) or (
            parts.scheme == "http" and self._port == 80
        )
        host = f"[{self._host}]" if ":" in self._host else self._host
        #: The ``Host`` header when the caller sends none (RFC 9112 section 3.2).
        self.host_header = host if default_port else f"{host}:{self._port}"
        self._limit = limit
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive_timeout
        self._idle: list[_Connection] = []
        #: Every open connection, idle or busy (closed at :meth:`close`).
        self._connections: set[_Connection] = set()
        self._open = 0
        #: Requests waiting for a connection, first come first served: a released
        #: connection is handed to the first (a Future's result), a freed slot wakes
        #: it with None (it may connect).
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._closing = False

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    # -- requests -----------------------------------------------------------------------
    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | AsyncIterator[bytes] | None = None,
    ) -> UpstreamResponse:
        """Send one request and return once its response headers are in.

        ``headers`` are sent as given (the caller filtered them), plus ``Host`` when
        absent and the body's framing; any ``Content-Length`` or
        ``Transfer-Encoding`` the caller left is replaced by the body's own.
        """
        head, streamed, chunked = self._head(method, target, headers, body)
        retry = (
            method in IDEMPOTENT and not streamed
        )  # a body in hand can be sent again; a stream cannot
        while True:
            conn = await self._acquire()
            reused = conn.reused
            try:
                if streamed:
                    stream = cast(AsyncIterator[bytes], body)
                    return await self._exchange_streamed(conn, method, head, stream, chunked)
                return await conn.start(method, head)
            except UpstreamDisconnected:
                received = conn._received
                conn.close()
                if retry and reused and not received:
                    retry = False
                    continue
                raise
            except BaseException:
                conn.close()
                raise

    async def _exchange_streamed(
        self,
        conn: _Connection,
        method: str,
        head: bytes,
        body: AsyncIterator[bytes],
        chunked: bool,
    ) -> UpstreamResponse:
        """Send the body while waiting for the answer: an upstream may answer (a 413,
        say) before the body ends, and an error of the body (too large) ends the wait."""
        future = conn.start(method, head)
        sender = self.loop.create_task(conn.send_stream(body, chunked))
        try:
            waits: set[asyncio.Future[object]] = {future, sender}  # type: ignore[arg-type]
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if sender in done:
                failure = sender.exception()
                if failure is not None:
                    raise failure
            response = await future
        except BaseException:
            sender.cancel()
            future.cancel()
            raise
        if not sender.done():
            # The answer came before the whole body was sent: this connection ends
            # with this exchange (its request framing is unfinished).
            sender.cancel()
            conn._keep_alive = False
        return response

    def _head(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | AsyncIterator[bytes] | None,
    ) -> tuple[bytes, bool, bool]:
        if not _METHOD.fullmatch(method):
            raise UpstreamProtocolError(f"not an HTTP method: {method!r}")
        if _BAD_TARGET.search(target) or not (target.startswith("/") or target == "*"):
            raise UpstreamProtocolError("the request target is not in origin form")
        lines = [f"{method} {target} HTTP/1.1"]
        has_host = False
        has_length = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == "host":
                has_host = True
            elif lowered == "content-length":
                has_length = body is not None and not isinstance(body, bytes)
                if not has_length:
                    continue
            elif lowered == "transfer-encoding":
                continue
            lines.append(f"{name}: {value}")
        if not has_host:
            lines.append(f"Host: {self.host_header}")
        streamed = False
        chunked = False
        if isinstance(body, bytes):
            lines.append(f"Content-Length: {len(body)}")
        elif body is None:
            if method in _CONTENT_METHODS:
                lines.append("Content-Length: 0")
        else:
            streamed = True
            if not has_length:
                chunked = True
                lines.append("Transfer-Encoding: chunked")
        text = "\r\n".join(lines)
        # A CR or LF inside a name or value would split the request (RFC 9110 5.5).
        if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
            raise UpstreamProtocolError("a request header holds a line break")
        head = (text + "\r\n\r\n").encode("utf-8", "surrogateescape")
        if isinstance(body, bytes) and body:
            head += body
        return head, streamed, chunked

    # -- the pool -----------------------------------------------------------------------
    async def _acquire(self) -> _Connection:
        idle = self._idle
        while True:
            if self._closing:
                raise UpstreamConnectError(
                    "the upstream pool is closed", ConnectionAbortedError("pool closed")
                )
            if idle:
                now = self.loop.time()
                while idle:
                    conn = idle.pop()
                    if not conn.closed and now - conn.idle_since < self._keepalive:
                        conn._active = True
                        return conn
                    conn.close()
            if self._open < self._limit:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
            waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    # Woken, but leaving: the turn (or the connection) goes to the next.
                    left = waiter.result()
                    if left is not None:
                        self._put_idle(left)
                    else:
                        self._wake_one()
                else:
                    waiter.cancel()
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
            if handed is not None and not handed.closed:
                handed._active = True
                return handed

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, protocol = await self.loop.create_connection(
                    lambda: _Connection(self),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError as exc:
            raise UpstreamConnectError(
                f"no connection to {self.host_header} within {self._connect_timeout} s", exc
            ) from exc
        except OSError as exc:  # refused, unresolvable, unreachable, TLS (ssl.SSLError)
            raise UpstreamConnectError(f"cannot connect to {self.host_header}: {exc}", exc) from exc
        if protocol.closed:  # lost between the handshake and now
            raise UpstreamConnectError(
                f"the connection to {self.host_header} closed at once",
                ConnectionResetError("closed at once"),
            )
        protocol.counted = True
        protocol._active = True
        self._connections.add(protocol)
        return protocol

    def _put_idle(self, conn: _Connection) -> None:
        """A connection free for the next request: the first waiter's, else idle."""
        if self._closing:
            conn.close()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = self.loop.time()
        self._idle.append(conn)
        if self._sweep is None:
            self._sweep = self.loop.call_later(self._keepalive, self._sweep_idle)

    def _sweep_idle(self) -> None:
        self._sweep = None
        now = self.loop.time()
        keep = []
        for conn in self._idle:
            if conn.closed:
                continue
            if now - conn.idle_since >= self._keepalive:
                conn.close()
            else:
                keep.append(conn)
        self._idle[:] = keep
        if keep:
            oldest = min(conn.idle_since for conn in keep)
            self._sweep = self.loop.call_at(oldest + self._keepalive, self._sweep_idle)

    def _lost(self, conn: _Connection) -> None:
        """A connection closed: its slot is free (called once per connection)."""
        self._open -= 1
        self._connections.discard(conn)
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        """A slot is free (a connection closed): the first waiter may open one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close every connection; a response still arriving ends with an error."""
        self._closing = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conn in list(self._connections):
            conn.close()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        await asyncio.sleep(0)
