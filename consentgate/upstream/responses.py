"""One upstream response as the relay reads it: status, headers, and a body that
arrives while it is read.

The body keeps the reading side of ``aiohttp.StreamReader`` the gate uses, with its
back-pressure: above :data:`BUFFER_HIGH` buffered bytes the upstream socket is
paused until the client has read them (a slow client must not make the gate buffer
a fast upstream's whole answer). Response headers are limited to
:data:`MAX_HEADER_BYTES` (the connection refuses more).
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Final

from multidict import CIMultiDictProxy

if TYPE_CHECKING:
    from consentgate.upstream.connection import Connection

#: Response status line and headers together may be at most this long.
MAX_HEADER_BYTES: Final = 64 * 1024
#: Bytes of a response body buffered before the upstream socket is paused.
BUFFER_HIGH: Final = 256 * 1024


class ResponseBody:
    """The body of one response as it arrives: what the relay reads.

    The reading side of ``aiohttp.StreamReader`` that the gate uses, with the same
    meanings: :meth:`read_nowait` takes whatever is buffered (maybe nothing),
    :meth:`readany` waits for something, ``b""`` at the end; an error is raised by
    the next read once the buffered bytes are taken.
    """

    __slots__ = ("_chunks", "_conn", "_eof", "_exc", "_size", "_waiter")

    def __init__(self, conn: Connection) -> None:
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
        conn: Connection,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self._conn: Connection | None = conn

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
