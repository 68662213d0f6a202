"""Request bodies that never come, and one address holding the upstream pool.

A client that sends a request head announcing a body (``Content-Length: 10``) and
then nothing took an upstream connection for ever: 260 of them held the whole pool
(256) and every other client waited ``read_timeout`` for a 504. These tests open real
TCP connections to a gate on 127.0.0.1 (the flood) and 127.0.0.2 (someone else), all
bounded in number and time; each test closes what it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from consentgate.web.appkeys import UPSTREAM
from tests.conftest import RunningGate, StartGate, StartUpstream

pytestmark = pytest.mark.slow  # waits out body timeouts on purpose

STALLED_HEADS = (
    b"POST /x HTTP/1.1\r\nHost: g\r\nContent-Length: 10\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: g\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Content-Length: 10\r\n\r\n",
)


@pytest.fixture
async def upstream(start_upstream: StartUpstream) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """An upstream answering ``/slow`` once the event is set, and anything else at once."""
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        body = await request.read()
        if request.path == "/slow":
            await release.wait()
        return web.Response(text=f"upstream {len(body)}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    yield await start_upstream(app), release
    release.set()


class Clients:
    """Raw connections to the gate from a chosen loopback address; all closed at the end."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []

    async def open(
        self, gate: RunningGate, source: str = "127.0.0.1"
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        port = int(gate.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        self.writers.append(writer)
        return reader, writer

    async def stall(self, gate: RunningGate, count: int) -> list[asyncio.StreamReader]:
        """``count`` connections that send a request head announcing a body, and stop."""
        readers = []
        for number in range(count):
            reader, writer = await self.open(gate)
            writer.write(STALLED_HEADS[number % len(STALLED_HEADS)])
            readers.append(reader)
        return readers

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    made.close()


async def answer_to(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, seconds: float
) -> bytes:
    """Send ``request`` (with ``Connection: close``) and read the whole answer, or b"" if
    none came within ``seconds``."""
    writer.write(request)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            return await reader.read()
    return b""


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def in_use(gate: RunningGate) -> int:
    pool = gate.app[UPSTREAM].pool
    return pool.open_connections - pool.idle_connections


GET_CLOSE = b"GET /other HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n"


async def test_stalled_request_bodies_leave_the_upstream_pool_to_another_client(
    upstream: tuple[str, asyncio.Event], start_gate: StartGate, clients: Clients
) -> None:
    """Twice the pool's size of connections announce a body and send nothing: none of
    them takes an upstream connection, and a request from another address is
    answered (before: the pool was full and it got a 504 after ``read_timeout``)."""
    url, _ = upstream
    gate = await start_gate(
        url,
        server={"body_timeout": 60},
        upstream={"max_connections": 8, "read_timeout": 3},
    )
    await clients.stall(gate, 16)
    await asyncio.sleep(0.3)
    held = in_use(gate)
    reader, writer = await clients.open(gate, "127.0.0.2")
    answer = await answer_to(reader, writer, GET_CLOSE, 10)
    print(f"stalled=16 pool_limit=8 pool_in_use={held} other_client={status_of(answer)}")
    assert held == 0
    assert status_of(answer) == 200
    assert answer.endswith(b"upstream 0")


async def test_260_stalled_bodies_against_the_default_pool_leave_room_for_another_client(
    upstream: tuple[str, asyncio.Event], start_gate: StartGate, clients: Clients
) -> None:
    """The reported flood at full scale: 260 stalled bodies, the default pool of 256."""
    url, _ = upstream
    gate = await start_gate(url, upstream={"read_timeout": 3})
    assert gate.config.upstream.max_connections == 256
    await clients.stall(gate, 260)
    await asyncio.sleep(0.5)
    held = in_use(gate)
    reader, writer = await clients.open(gate, "127.0.0.2")
    answer = await answer_to(reader, writer, GET_CLOSE, 10)
    print(f"stalled=260 pool_limit=256 pool_in_use={held} other_client={status_of(answer)}")
    assert held == 0
    assert status_of(answer) == 200


@pytest.mark.parametrize("head", STALLED_HEADS, ids=["post", "upgrade"])
async def test_a_request_body_that_never_comes_gets_408_after_the_body_timeout(
    head: bytes, upstream: tuple[str, asyncio.Event], start_gate: StartGate, clients: Clients
) -> None:
    url, _ = upstream
    gate = await start_gate(url, server={"body_timeout": 1})
    reader, writer = await clients.open(gate)
    answer = await answer_to(reader, writer, head + b"abc", 8)  # 3 of the 10 bytes
    assert status_of(answer) == 408
    assert b"Connection: close" in answer
    assert reader.at_eof()  # the connection is closed after the answer
    assert in_use(gate) == 0


async def test_a_streamed_body_that_stalls_half_way_gets_408_and_frees_its_upstream_connection(
    upstream: tuple[str, asyncio.Event], start_gate: StartGate, clients: Clients
) -> None:
    """A large body starts (so it is streamed upstream), then stops: 408 once it paused
    ``body_timeout``, and its upstream connection is closed, not kept."""
    url, _ = upstream
    gate = await start_gate(url, server={"body_timeout": 1})
    reader, writer = await clients.open(gate)
    size = 1024 * 1024
    head = f"POST /x HTTP/1.1\r\nHost: g\r\nContent-Length: {size}\r\n\r\n".encode()
    writer.write(head + b"x" * (200 * 1024))
    await asyncio.sleep(0.3)
    assert in_use(gate) == 1  # the body started: it is on its way upstream
    answer = await answer_to(reader, writer, b"", 8)
    assert status_of(answer) == 408
    await asyncio.sleep(0.1)
    assert in_use(gate) == 0


async def test_a_slow_but_steady_body_is_not_cut_by_the_body_timeout(
    upstream: tuple[str, asyncio.Event], start_gate: StartGate, clients: Clients
) -> None:
    """The timeout is for a pause, not for the whole body: 8 pieces 0.3 s apart (2.4 s
    in all) with ``body_timeout`` 1 s arrive whole, streamed and small alike."""
    url, _ = upstream
    gate = await start_gate(url, server={"body_timeout": 1})
    for piece in (8, 20 * 1024):  # a small body buffered whole, a large one streamed
        reader, writer = await clients.open(gate)
        size = 8 * piece
        writer.write(
            f"POST /x HTTP/1.1\r\nHost: g\r\nContent-Length: {size}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        for _ in range(8):
            await asyncio.sleep(0.3)
            writer.write(b"y" * piece)
        answer = await answer_to(reader, writer, b"", 8)
        assert status_of(answer) == 200
        assert answer.endswith(f"upstream {size}".encode())


async def test_one_address_gets_at_most_its_share_of_the_upstream_pool(
    upstream: tuple[str, asyncio.Event], start_gate: StartGate, clients: Clients
) -> None:
    """With 2 of 8 connections per address, a third slow request from 127.0.0.1 gets
    503 with Retry-After at once; 127.0.0.2 is still answered; the share comes back."""
    url, release = upstream
    gate = await start_gate(url, upstream={"max_connections": 8, "max_connections_per_address": 2})
    slow = b"GET /slow HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n"
    pending = []
    for _ in range(2):
        reader, writer = await clients.open(gate)
        writer.write(slow)
        pending.append(reader)
    await asyncio.sleep(0.3)
    assert in_use(gate) == 2
    reader, writer = await clients.open(gate)
    refused = await answer_to(reader, writer, slow, 5)
    assert status_of(refused) == 503
    assert b"\r\nRetry-After: " in refused
    reader, writer = await clients.open(gate, "127.0.0.2")
    assert status_of(await answer_to(reader, writer, GET_CLOSE, 5)) == 200
    release.set()
    for waiting in pending:
        async with asyncio.timeout(5):
            assert status_of(await waiting.read()) == 200
    reader, writer = await clients.open(gate)
    assert status_of(await answer_to(reader, writer, GET_CLOSE, 5)) == 200


async def test_a_form_posted_to_the_gate_that_stops_arriving_gets_408(
    upstream: tuple[str, asyncio.Event], start_gate: StartGate, clients: Clients
) -> None:
    """The gate's own forms (an authorization request by POST) are read whole within
    ``body_timeout``: a form that stops half way does not hold its connection."""
    url, _ = upstream
    gate = await start_gate(url, server={"body_timeout": 1})
    reader, writer = await clients.open(gate)
    head = (
        b"POST /authorize HTTP/1.1\r\nHost: g\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 40\r\n\r\n"
    )
    answer = await answer_to(reader, writer, head + b"client_id=", 8)
    assert status_of(answer) == 408
    assert reader.at_eof()
