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

The connection (:mod:`consentgate.upstream.connection`) frames the request and
parses the answer with llhttp; the response and its back-pressured body are
:mod:`consentgate.upstream.responses`, the errors :mod:`consentgate.upstream.failures`.

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

from consentgate.upstream.connection import Connection
from consentgate.upstream.failures import (
    UpstreamConnectError,
    UpstreamDisconnected,
    UpstreamProtocolError,
)
from consentgate.upstream.responses import UpstreamResponse

#: Methods retried once on a new connection when a reused one was found closed.
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
#: Methods whose request defines content: sent ``Content-Length: 0`` without a body.
_CONTENT_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
#: A request target is origin-form or ``*`` and never holds a space or a control byte.
_BAD_TARGET: Final = re.compile(r"[\x00-\x20\x7f]")
_METHOD: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def bad_target(target: str) -> bool:
    """Whether ``target`` holds a space or a control byte (:data:`_BAD_TARGET`). An
    ASCII target is read without the regular expression: there ``str.isprintable``
    is false exactly on ``\\x00``-``\\x1f`` and ``\\x7f``, and a sign-in's long
    target cost the character class some 30 instructions a character."""
    if target.isascii():
        return not target.isprintable() or " " in target
    return _BAD_TARGET.search(target) is not None


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
        self._idle: list[Connection] = []
        #: Every open connection, idle or busy (closed at :meth:`close`).
        self._connections: set[Connection] = set()
        self._open = 0
        #: Requests waiting for a connection, first come first served: a released
        #: connection is handed to the first (a Future's result), a freed slot wakes
        #: it with None (it may connect).
        self._waiters: collections.deque[asyncio.Future[Connection | None]] = collections.deque()
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
        conn: Connection,
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
        if bad_target(target) or not (target.startswith("/") or target == "*"):
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
    async def _acquire(self) -> Connection:
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
            waiter: asyncio.Future[Connection | None] = self.loop.create_future()
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

    async def _connect(self) -> Connection:
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, protocol = await self.loop.create_connection(
                    lambda: Connection(self),
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

    def _put_idle(self, conn: Connection) -> None:
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
        """Close the connections idle for ``keepalive_timeout``, traffic or not: one timer
        per pool, armed when a connection goes idle and none is armed, then at the next
        expiry while any stays idle (never one timer per request).

        The idle list is settled before anything is closed: closing a connection calls
        :meth:`_lost` at once, which removes it from that list, so closing while walking
        it would skip every other expired connection and leave it open, out of the list
        and never swept."""
        self._sweep = None
        now = self.loop.time()
        keep = [c for c in self._idle if not c.closed and now - c.idle_since < self._keepalive]
        expired = [c for c in self._idle if not c.closed and now - c.idle_since >= self._keepalive]
        self._idle[:] = keep
        for conn in expired:
            conn.close()
        if keep:
            oldest = min(conn.idle_since for conn in keep)
            self._sweep = self.loop.call_at(oldest + self._keepalive, self._sweep_idle)

    def _lost(self, conn: Connection) -> None:
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
