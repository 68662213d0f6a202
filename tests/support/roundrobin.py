"""A round-robin TCP front for several gates, on loopback: each new connection goes to
the next backend, as a load balancer without sticky sessions would send it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from tests.conftest import bound_socket

#: Chooses the backend of a connection from its first request line ("GET /path HTTP/1.1"),
#: or returns None to leave it to the rotation.
Steer = Callable[[str], int | None]


class RoundRobin:
    def __init__(self, backends: list[tuple[str, int]], *, steer: Steer | None = None) -> None:
        self.backends = backends
        #: The backend index each accepted connection went to, in order.
        self.sent_to: list[int] = []
        #: (backend index, first request line) of each connection that sent one.
        self.requests: list[tuple[int, str]] = []
        self._steer = steer
        self._next = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _choose(self, request_line: str) -> int:
        steered = self._steer(request_line) if self._steer and request_line else None
        if steered is not None:
            return steered % len(self.backends)
        index = self._next
        self._next = (self._next + 1) % len(self.backends)
        return index

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The request line first: it may choose the backend, and it is recorded.
        try:
            first = await reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError as exc:
            first = exc.partial
        except (ConnectionError, asyncio.LimitOverrunError):
            first = b""
        request_line = first.split(b"\r\n", 1)[0].decode("latin-1")
        index = self._choose(request_line)
        self.sent_to.append(index)
        if request_line:
            self.requests.append((index, request_line))
        host, port = self.backends[index]
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        up_writer.write(first)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Listen on 127.0.0.1 and yield the front's URL."""
        sock = bound_socket()
        server = await asyncio.start_server(self._handle, sock=sock)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
