"""The upstream pool against a raw TCP server on 127.0.0.1 that writes exactly the bytes
each test says: request framing, keep-alive, response framing and the malformed
answers llhttp must refuse (the response-splitting cases), back-pressure, limits."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from consentgate.upstream import pool as pool_module
from consentgate.upstream.failures import (
    UpstreamConnectError,
    UpstreamDisconnected,
    UpstreamProtocolError,
)
from consentgate.upstream.pool import UpstreamPool
from consentgate.upstream.responses import BUFFER_HIGH, MAX_HEADER_BYTES, UpstreamResponse

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server whose every connection runs ``handler``; it records what it read."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed_by_peer = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        return head

    async def close(self) -> None:
        """Stop listening; handlers get a moment to see their connection end."""
        if self._server is not None:
            self._server.close()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


@contextlib.asynccontextmanager
async def serving(
    handler: Handler, *, limit: int = 8, keepalive: float = 5.0
) -> AsyncIterator[tuple[RawServer, UpstreamPool]]:
    server = RawServer(handler)
    await server.start()
    pool = UpstreamPool(
        f"http://127.0.0.1:{server.port}",
        limit=limit,
        connect_timeout=2.0,
        keepalive_timeout=keepalive,
        loop=asyncio.get_running_loop(),
    )
    try:
        yield server, pool
    finally:
        await pool.close()
        await server.close()


@contextlib.asynccontextmanager
async def scripted(
    *responses: bytes, limit: int = 8, keepalive: float = 5.0
) -> AsyncIterator[tuple[RawServer, UpstreamPool]]:
    """A server answering the requests it reads, on whichever connection, with
    ``responses`` in order; it keeps a connection open until the pool closes it."""
    holder: list[RawServer] = []
    left = list(responses)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while left:
            await holder[0].read_request(reader)
            writer.write(left.pop(0))
            await writer.drain()
        await reader.read()

    async with serving(handler, limit=limit, keepalive=keepalive) as (server, pool):
        holder.append(server)
        yield server, pool


def answering_once_set(event: asyncio.Event) -> Handler:
    """A handler that reads each request and answers it ``OK`` once ``event`` is set."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            await event.wait()
            writer.write(OK)
            await writer.drain()

    return handler


async def body_of(response: UpstreamResponse) -> bytes:
    chunks = []
    while chunk := await response.content.readany():
        chunks.append(chunk)
    response.release()
    return b"".join(chunks)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_the_request_is_the_target_and_headers_as_given_plus_host_and_framing() -> None:
    async with scripted(OK, OK, OK) as (server, pool):
        target = "/a%2Fb/../c?redirect_uri=https%3A%2F%2Fx&y=%41"
        response = await pool.request("GET", target, [("X-One", "1"), ("Content-Length", "9")])
        assert (response.status, await body_of(response)) == (200, b"ok")
        response = await pool.request("POST", "/p", [("Host", "public.example")], b"abc")
        await body_of(response)
        response = await pool.request("POST", "/empty", [("Transfer-Encoding", "chunked")])
        await body_of(response)
    host = f"127.0.0.1:{server.port}"
    assert server.requests == [
        # byte-exact target; a Content-Length without a body is not sent
        f"GET {target} HTTP/1.1\r\nX-One: 1\r\nHost: {host}\r\n\r\n".encode(),
        b"POST /p HTTP/1.1\r\nHost: public.example\r\nContent-Length: 3\r\n\r\n",
        f"POST /empty HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n".encode(),
    ]
    assert server.connections == 1  # one kept-alive connection for all three


async def test_a_streamed_body_without_length_is_chunked_and_with_one_is_sent_as_is() -> None:
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        received.append(head)
        received.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(OK)
        head = await reader.readuntil(b"\r\n\r\n")
        received.append(head)
        received.append(await reader.readexactly(6))
        writer.write(OK)
        await reader.read()

    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"abc", b"", b"defgh"):
            yield part

    async with serving(handler) as (_, pool):
        await body_of(await pool.request("POST", "/c", [], chunks()))
        await body_of(
            await pool.request("PUT", "/l", [("Content-Length", "6")], _gen(b"abc", b"def"))
        )
    assert received[0].endswith(b"Transfer-Encoding: chunked\r\n\r\n")
    assert received[1] == b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"
    assert b"Content-Length: 6\r\n" in received[2] and b"chunked" not in received[2]
    assert received[3] == b"abcdef"


async def _gen(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.parametrize(
    "header",
    [("X-Evil", "a\r\nX-Injected: 1"), ("X-Evil", "a\nb"), ("X-E\rvil", "a")],
)
async def test_a_line_break_in_a_header_sends_nothing(header: tuple[str, str]) -> None:
    async with scripted(OK) as (server, pool):
        with pytest.raises(UpstreamProtocolError, match="line break"):
            await pool.request("GET", "/", [header])
    assert server.requests == []


@pytest.mark.parametrize(
    "target",
    ["/a b", "/a\r\nX: y", "http://elsewhere/", "", "/\x00", "/\x7f", "/a\tb", "/\u00e9\x1f"],
)
async def test_a_target_not_in_origin_form_sends_nothing(target: str) -> None:
    async with scripted(OK) as (server, pool):
        with pytest.raises(UpstreamProtocolError, match="origin form"):
            await pool.request("GET", target, [])
    assert server.requests == []


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
            "Content-Length",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "Duplicate"),
        (b"HTTP/1.1 200 OK\nContent-Length: 1\n\na", "CR"),
        (b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 1\r\n\r\na", "whitespace"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "status"),
        (b"HTTP/1.1 200 OK\r\nX Y: z\r\n\r\n", "malformed"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "malformed"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", "switched protocols"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n", "longer than"),
    ],
)
async def test_a_malformed_response_is_refused_not_guessed_at(raw: bytes, problem: str) -> None:
    async with scripted(raw) as (_, pool):
        with pytest.raises(UpstreamProtocolError, match=problem):
            await pool.request("GET", "/", [])
        assert pool.open_connections == 0  # that connection is closed, never reused


async def test_interim_responses_are_skipped() -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\nok"
    )
    async with scripted(raw) as (_, pool):
        response = await pool.request("GET", "/", [])
        assert (response.status, response.reason) == (201, "Created")
        assert dict(response.headers) == {"Content-Length": "2", "X-Final": "yes"}
        assert await body_of(response) == b"ok"


async def test_headers_keep_repeats_and_order() -> None:
    raw = (
        b"HTTP/1.1 302 Found\r\nSet-Cookie: a=1\r\nLocation: /x\r\nSet-Cookie: b=2\r\n"
        b"Content-Type: application/json; charset=utf-8\r\nContent-Length: 0\r\n\r\n"
    )
    async with scripted(raw) as (_, pool):
        response = await pool.request("GET", "/", [])
        assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
        assert response.content_type == "application/json"
        assert await body_of(response) == b""


async def test_a_body_delimited_by_the_close_ends_with_it() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"it")

    async with serving(handler) as (_, pool):
        response = await pool.request("GET", "/", [])
        assert await body_of(response) == b"all of it"
        assert pool.open_connections == 0


async def test_a_body_cut_short_is_an_error_not_an_end() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    async with serving(handler) as (_, pool):
        response = await pool.request("GET", "/", [])
        assert await response.content.readany() == b"only this"
        with pytest.raises(UpstreamDisconnected):
            await response.content.readany()
        response.release()


async def test_a_chunked_body_cut_short_is_an_error_too() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")

    async with serving(handler) as (_, pool):
        response = await pool.request("GET", "/", [])
        with pytest.raises(UpstreamDisconnected):
            await body_of(response)


async def test_a_head_answer_ends_at_its_headers_and_its_connection_is_not_reused() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
    holder: list[RawServer] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await holder[0].read_request(reader)
            writer.write(head if request.startswith(b"HEAD ") else OK)
            await writer.drain()

    async with serving(handler) as (server, pool):
        holder.append(server)
        response = await pool.request("HEAD", "/", [])
        assert response.headers["Content-Length"] == "5000"
        assert await body_of(response) == b""
        assert pool.open_connections == 0
        assert await body_of(await pool.request("GET", "/", [])) == b"ok"
    assert server.connections == 2


async def test_no_body_for_204_and_304_and_their_connection_is_not_reused() -> None:
    async with scripted(
        b"HTTP/1.1 204 No Content\r\n\r\n", b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", OK
    ) as (server, pool):
        for status in (204, 304):
            response = await pool.request("GET", "/", [])
            assert (response.status, await body_of(response)) == (status, b"")
            assert pool.open_connections == 0
        assert await body_of(await pool.request("GET", "/", [])) == b"ok"
    assert server.connections == 3


#: A whole response an upstream that breaks framing sends late, after its answer.
SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
MINE = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine"


def late_bytes(first: bytes, late: bytes, *, after: float) -> Handler:
    """The first connection answers its first request with ``first`` and sends
    ``late`` ``after`` seconds later, unasked; every request after gets ``mine``."""
    used: list[bool] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not used:
            used.append(True)
            await reader.readuntil(b"\r\n\r\n")
            writer.write(first)
            await writer.drain()
            await asyncio.sleep(after)
            writer.write(late)
            await writer.drain()
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(MINE)
            await writer.drain()

    return handler


@pytest.mark.parametrize(
    ("method", "first"),
    [
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n"),
    ],
    ids=["204", "304", "HEAD"],
)
async def test_late_bytes_after_an_answer_without_body_never_answer_the_next_request(
    method: str, first: bytes
) -> None:
    """An upstream that writes a body after a 204, a 304 or a HEAD answer: those bytes
    must not become the answer to the next request sent on that connection."""
    async with serving(late_bytes(first, SMUGGLED, after=0.05)) as (server, pool):
        response = await pool.request(method, "/", [])
        assert await body_of(response) == b""
        second = await pool.request("GET", "/second", [])
        assert (second.status, await body_of(second)) == (200, b"mine")
    assert server.connections == 2


@pytest.mark.parametrize("after", [0.0, 0.05], ids=["same-write", "late"])
async def test_bytes_beyond_the_content_length_never_answer_the_next_request(
    after: float,
) -> None:
    """Bytes after a too-short Content-Length, in the same write or while the answer
    is still being read: the connection is not reused."""
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with serving(late_bytes(first, SMUGGLED, after=after)) as (server, pool):
        response = await pool.request("GET", "/", [])
        assert await response.content.readany() == b"ok"
        await asyncio.sleep(after + 0.05)  # the relay still writing "ok" to its client
        response.release()
        second = await pool.request("GET", "/second", [])
        assert (second.status, await body_of(second)) == (200, b"mine")
    assert server.connections == 2


async def test_bytes_while_idle_close_the_connection_before_it_is_handed_out() -> None:
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with serving(late_bytes(first, SMUGGLED, after=0.0)) as (server, pool):
        assert await body_of(await pool.request("GET", "/", [])) == b"ok"
        await asyncio.sleep(0.05)
        second = await pool.request("GET", "/second", [])
        assert (second.status, await body_of(second)) == (200, b"mine")
    assert server.connections == 2


async def test_an_answer_before_the_request_body_was_written_ends_the_connection() -> None:
    """The upstream answers before reading the body (a 413, say): what is left of the
    body, still being written, would be read by the upstream as the next request (a
    request smuggled in a body), and its answer would go to the next client."""
    smuggled_request = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"x" * (32 * 1024 * 1024) + smuggled_request
    answered = asyncio.Event()

    used: list[bool] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not used:
            used.append(True)
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await answered.wait()
            await reader.readexactly(len(body) - len(smuggled_request))  # the body's filler
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(SMUGGLED if head.startswith(b"GET /smuggled") else MINE)
            await writer.drain()

    async with serving(handler) as (server, pool):
        response = await pool.request("POST", "/", [], body)
        assert await body_of(response) == b"ok"
        answered.set()
        second = await asyncio.wait_for(pool.request("GET", "/second", []), 5)
        assert (second.status, await body_of(second)) == (200, b"mine")
    assert server.connections == 2


async def test_connection_close_and_http_1_0_answers_are_not_reused() -> None:
    async with scripted(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok") as (
        _,
        pool,
    ):
        assert await body_of(await pool.request("GET", "/", [])) == b"ok"
        assert pool.open_connections == 0
    async with scripted(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok") as (_, pool):
        assert await body_of(await pool.request("GET", "/", [])) == b"ok"
        assert pool.open_connections == 0


async def test_a_response_not_read_to_its_end_closes_its_connection() -> None:
    async with scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", OK) as (
        server,
        pool,
    ):
        response = await pool.request("GET", "/", [])
        response.release()
        assert pool.open_connections == 0
        assert await body_of(await pool.request("GET", "/", [])) == b"ok"
    assert server.connections == 2


async def test_a_second_response_to_one_request_closes_the_connection() -> None:
    async with scripted(OK + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil") as (_, pool):
        response = await pool.request("GET", "/", [])
        assert await response.content.readany() == b"ok"
        await asyncio.sleep(0.05)
        response.release()
        assert pool.open_connections == 0


async def test_bytes_sent_to_an_idle_connection_close_it() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        await reader.read()

    async with serving(handler) as (_, pool):
        await body_of(await pool.request("GET", "/", []))
        assert pool.idle_connections == 1
        await asyncio.sleep(0.2)
        assert (pool.open_connections, pool.idle_connections) == (0, 0)


async def test_a_reused_connection_found_closed_is_retried_for_get_but_not_for_post() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
        # The next request on this connection is read, then dropped without an answer
        # (an upstream closing an idle connection just as it is reused).
        await reader.readuntil(b"\r\n\r\n")

    async with serving(handler) as (server, pool):
        await body_of(await pool.request("GET", "/", []))
        assert await body_of(await pool.request("GET", "/again", [])) == b"ok"
        assert server.connections == 2  # the retry went on a new connection
        with pytest.raises(UpstreamDisconnected):
            await pool.request("POST", "/p", [], b"x")
        assert server.connections == 2  # not retried: a POST may have had effects


async def test_a_new_connection_that_closes_is_never_retried() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async with serving(handler) as (server, pool):
        with pytest.raises(UpstreamDisconnected):
            await pool.request("GET", "/", [])
    assert server.connections == 1


async def test_the_pool_limit_makes_requests_wait_for_a_connection() -> None:
    gate = asyncio.Event()

    handler = answering_once_set(gate)

    async with serving(handler, limit=1) as (server, pool):

        async def one() -> bytes:
            return await body_of(await pool.request("GET", "/", []))

        tasks = [asyncio.create_task(one()) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert pool.open_connections == 1
        gate.set()
        assert await asyncio.gather(*tasks) == [b"ok"] * 3
    assert server.connections == 1


async def test_a_waiter_cancelled_gives_its_turn_on() -> None:
    release = asyncio.Event()

    handler = answering_once_set(release)

    async with serving(handler, limit=1) as (_, pool):
        first = asyncio.create_task(pool.request("GET", "/", []))
        await asyncio.sleep(0.02)
        waiting = asyncio.create_task(pool.request("GET", "/", []))
        third = asyncio.create_task(pool.request("GET", "/", []))
        await asyncio.sleep(0.02)
        waiting.cancel()
        release.set()
        assert await body_of(await first) == b"ok"
        assert await body_of(await asyncio.wait_for(third, 2)) == b"ok"


async def test_a_request_cancelled_while_waiting_frees_its_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()  # never answers

    async with serving(handler, limit=1) as (server, pool):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await pool.request("GET", "/", [])
        assert pool.open_connections == 0
        await asyncio.sleep(0.05)
    assert server.connections == 1


async def test_idle_connections_are_closed_after_the_keepalive_timeout() -> None:
    async with scripted(OK, keepalive=0.1) as (_, pool):
        await body_of(await pool.request("GET", "/", []))
        assert pool.idle_connections == 1
        await asyncio.sleep(0.35)
        assert (pool.open_connections, pool.idle_connections) == (0, 0)


async def test_every_idle_connection_of_a_burst_closes_on_time_without_more_traffic() -> None:
    """An aiohttp upstream that would keep its connections for an hour sees every one
    of a burst's closed by the pool's keep-alive timeout, with no request after it."""
    burst = 24
    arrived = 0
    everyone = asyncio.Event()

    async def hello(request: web.Request) -> web.Response:
        nonlocal arrived
        arrived += 1
        if arrived == burst:
            everyone.set()
        await everyone.wait()  # the burst is concurrent: one connection each
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    upstream = TestServer(app, host="127.0.0.1")
    await upstream.start_server(keepalive_timeout=3600)
    assert upstream.runner is not None and upstream.runner.server is not None
    server = upstream.runner.server  # its connections: the upstream's side of each
    pool = UpstreamPool(
        str(upstream.make_url("")).rstrip("/"),
        limit=burst,
        connect_timeout=2.0,
        keepalive_timeout=0.2,
        loop=asyncio.get_running_loop(),
    )
    try:

        async def one() -> bytes:
            return await body_of(await pool.request("GET", "/", []))

        assert await asyncio.gather(*(one() for _ in range(burst))) == [b"ok"] * burst
        assert (len(server.connections), pool.idle_connections) == (burst, burst)
        for _ in range(200):  # a bound (10 s) that only stops a hung test; nothing is sent
            if not server.connections:
                break
            await asyncio.sleep(0.05)
        assert (len(server.connections), pool.open_connections) == (0, 0)
    finally:
        await pool.close()
        await upstream.close()


async def test_a_body_the_reader_does_not_take_pauses_the_upstream() -> None:
    size = 128 * BUFFER_HIGH  # 32 MiB: more than loopback's socket buffers hold
    sent = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(b"x" * size)
        await writer.drain()
        sent.set()
        await reader.read()

    async with serving(handler) as (_, pool):
        response = await pool.request("GET", "/", [])
        await asyncio.sleep(0.3)
        buffered = len(response.content.read_nowait())
        assert buffered < 2 * BUFFER_HIGH  # reading paused, the rest waits in the kernel
        assert not sent.is_set()
        rest = await body_of(response)
        assert buffered + len(rest) == size
        assert sent.is_set()


async def test_an_answer_before_the_body_ends_is_returned_and_ends_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()

    never = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"first"
        await never.wait()
        yield b"never"

    async with serving(handler) as (_, pool):
        response = await asyncio.wait_for(pool.request("POST", "/", [], slow_body()), 2)
        assert response.status == 413
        assert await body_of(response) == b""
        assert pool.open_connections == 0


async def test_an_error_of_the_body_ends_the_request() -> None:
    class TooLarge(Exception):
        pass

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def bad_body() -> AsyncIterator[bytes]:
        yield b"x"
        raise TooLarge

    async with serving(handler) as (_, pool):
        with pytest.raises(TooLarge):
            await pool.request("POST", "/", [], bad_body())
        assert pool.open_connections == 0


async def test_nothing_listening_is_a_connect_error_naming_the_cause() -> None:
    from tests.conftest import bound_socket

    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    pool = UpstreamPool(
        f"http://127.0.0.1:{port}",
        limit=2,
        connect_timeout=1.0,
        keepalive_timeout=1.0,
        loop=asyncio.get_running_loop(),
    )
    with pytest.raises(UpstreamConnectError) as caught:
        await pool.request("GET", "/", [])
    assert isinstance(caught.value.os_error, ConnectionRefusedError)
    assert pool.open_connections == 0
    await pool.close()


def test_the_host_header_names_the_origin_without_a_default_port() -> None:
    loop = asyncio.new_event_loop()
    try:
        hosts = [
            UpstreamPool(
                origin, limit=1, connect_timeout=1, keepalive_timeout=1, loop=loop
            ).host_header
            for origin in (
                "http://upstream",
                "http://upstream:80",
                "http://upstream:8080",
                "https://upstream:443",
                "https://upstream:80",
                "http://[::1]:8000",
            )
        ]
    finally:
        loop.close()
    assert hosts == [
        "upstream",
        "upstream",
        "upstream:8080",
        "upstream",
        "upstream:80",
        "[::1]:8000",
    ]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_an_https_upstream_is_verified_and_kept_alive(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(OK)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    trusting = ssl.create_default_context(cafile=str(cert))
    pool = UpstreamPool(
        f"https://127.0.0.1:{port}",
        limit=2,
        connect_timeout=2,
        keepalive_timeout=5,
        loop=loop,
        ssl_context=trusting,
    )
    # The default context (the system's CAs, as Upstream.open uses) refuses this
    # self-signed certificate: verification is on.
    default = UpstreamPool(
        f"https://127.0.0.1:{port}", limit=2, connect_timeout=2, keepalive_timeout=5, loop=loop
    )
    try:
        for _ in range(2):
            assert await body_of(await pool.request("GET", "/", [])) == b"ok"
        assert connections == 1
        with pytest.raises(UpstreamConnectError) as caught:
            await default.request("GET", "/", [])
        assert isinstance(caught.value.os_error, ssl.SSLCertVerificationError)
    finally:
        await pool.close()
        await default.close()
        server.close()
        await server.wait_closed()


@contextlib.contextmanager
def unanswered_listener() -> Iterator[int]:
    """A port whose accept queue is full: a connect to it waits, on loopback, until
    given up (the kernel drops the SYN of a full queue)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(2):  # backlog 0 still queues one; two fill it
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_connect_that_takes_too_long_is_a_connect_error_naming_the_timeout() -> None:
    with unanswered_listener() as port:
        pool = UpstreamPool(
            f"http://127.0.0.1:{port}",
            limit=2,
            connect_timeout=0.3,
            keepalive_timeout=1.0,
            loop=asyncio.get_running_loop(),
        )
        try:
            with pytest.raises(UpstreamConnectError, match=r"within 0\.3 s") as caught:
                await pool.request("GET", "/", [])
            assert isinstance(caught.value.os_error, TimeoutError)
            assert pool.open_connections == 0
        finally:
            await pool.close()


async def test_a_released_connection_goes_to_the_longest_waiter_not_a_newcomer() -> None:
    release = asyncio.Event()

    handler = answering_once_set(release)

    async with serving(handler, limit=1) as (server, pool):
        order: list[str] = []

        async def one(name: str) -> None:
            response = await pool.request("GET", f"/{name}", [])
            order.append(name)
            await body_of(response)

        first = asyncio.create_task(pool.request("GET", "/first", []))
        await asyncio.sleep(0.02)
        waiting = asyncio.create_task(one("waiter"))
        await asyncio.sleep(0.02)
        release.set()
        response = await first
        assert await response.content.readany() == b"ok"
        # The newcomer's first step is scheduled before the waiter's wake-up: it runs
        # first, and must still not take the connection released to the waiter.
        newcomer = asyncio.create_task(one("newcomer"))
        response.release()
        await asyncio.wait_for(asyncio.gather(waiting, newcomer), 2)
        assert order == ["waiter", "newcomer"]
    assert server.connections == 1


@given(st.text(max_size=24) | st.sampled_from(["/\x7f", "/\x20", "/\u00e9 ", "/\u0085", "/ok"]))
def test_a_target_is_refused_for_a_space_or_a_control_byte_as_the_rule_says(target: str) -> None:
    # Read without a regular expression when it is ASCII (str.isprintable); the same
    # answer as the character class everywhere.
    assert pool_module.bad_target(target) == bool(re.search(r"[\x00-\x20\x7f]", target))
