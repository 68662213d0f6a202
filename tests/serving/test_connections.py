"""Connection limits with real sockets: idle and header timeouts, the cap, accept errors.

Hardening issue #10, point 8. Every test opens real TCP connections to a gate on
127.0.0.1, is bounded in count and time, and closes what it opened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from consentgate.serving.connections import AcceptErrorLimiter
from tests.conftest import RunningGate, StartGate, StartUpstream


@pytest.fixture
async def upstream(start_upstream: StartUpstream) -> str:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="upstream")

    app = web.Application()
    app.router.add_get("/{tail:.*}", ok)
    return await start_upstream(app)


class Sockets:
    def __init__(self, gate: RunningGate) -> None:
        self.port = int(gate.url.rsplit(":", 1)[1])
        self.opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        pair = await asyncio.open_connection("127.0.0.1", self.port)
        self.opened.append(pair)
        return pair

    def close(self) -> None:
        for _, writer in self.opened:
            writer.close()


@pytest.fixture
async def sockets() -> AsyncIterator[list[Sockets]]:
    made: list[Sockets] = []
    yield made
    for group in made:
        group.close()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> float | None:
    """Seconds until the gate closed the connection (EOF), or None if it stayed open."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


async def get(sockets: Sockets, path: str = "/x") -> bytes:
    reader, writer = await sockets.open()
    writer.write(f"GET {path} HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n".encode())
    async with asyncio.timeout(5):
        return await reader.read()


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    upstream: str, start_gate: StartGate, sockets: list[Sockets]
) -> None:
    gate = await start_gate(upstream, server={"idle_timeout": 1, "header_timeout": 30})
    group = Sockets(gate)
    sockets.append(group)
    reader, _ = await group.open()
    took = await closed_within(reader, 5)
    assert took is not None
    assert 0.5 < took < 3


async def test_a_client_trickling_its_headers_is_closed_after_the_header_timeout(
    upstream: str, start_gate: StartGate, sockets: list[Sockets]
) -> None:
    gate = await start_gate(upstream, server={"idle_timeout": 30, "header_timeout": 1})
    group = Sockets(gate)
    sockets.append(group)
    reader, writer = await group.open()
    writer.write(b"GET /x HTTP/1.1\r\nHost: g\r\n")
    started = time.monotonic()

    async def trickle() -> None:
        for _ in range(40):
            await asyncio.sleep(0.2)
            if writer.is_closing():
                return
            writer.write(b"X-a: b\r\n")

    task = asyncio.create_task(trickle())
    took = await closed_within(reader, 6)
    task.cancel()
    assert took is not None, "a slow-headers client was never closed"
    assert time.monotonic() - started < 3


async def test_an_idle_keep_alive_connection_is_closed_and_a_complete_request_is_served(
    upstream: str, start_gate: StartGate, sockets: list[Sockets]
) -> None:
    gate = await start_gate(upstream, server={"idle_timeout": 1, "header_timeout": 1})
    group = Sockets(gate)
    sockets.append(group)
    reader, writer = await group.open()
    writer.write(b"GET /x HTTP/1.1\r\nHost: g\r\n\r\n")
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    took = await closed_within(reader, 5)
    assert took is not None
    assert took < 3


async def test_at_the_connection_cap_silent_connections_make_room_for_real_requests(
    upstream: str, start_gate: StartGate, sockets: list[Sockets]
) -> None:
    """Slowloris sockets fill the cap; a health check and a request still get through,
    the oldest silent socket is the one closed, and the count never exceeds the cap."""
    gate = await start_gate(
        upstream, server={"max_connections": 20, "idle_timeout": 60, "header_timeout": 60}
    )
    group = Sockets(gate)
    sockets.append(group)
    silent = [await group.open() for _ in range(20)]
    for _, writer in silent[10:]:
        writer.write(b"GET /x HTTP/1.1\r\n")  # half a request
    await asyncio.sleep(0.2)
    answer = await get(group, "/_consentgate/healthz")
    assert answer.startswith(b"HTTP/1.1 200")
    assert (await get(group)).endswith(b"upstream")
    assert await closed_within(silent[0][0], 2) is not None  # the oldest made room
    # the health check closed before the request came, so one eviction was enough
    assert await closed_within(silent[1][0], 0.3) is None
    assert await closed_within(silent[19][0], 0.3) is None
    guard = gate.runner.guard
    assert len(guard) <= 20
    assert guard.evicted == 1


async def test_500_trickling_connections_are_all_closed_and_health_answers(
    upstream: str, start_gate: StartGate, sockets: list[Sockets]
) -> None:
    gate = await start_gate(
        upstream, server={"max_connections": 200, "idle_timeout": 2, "header_timeout": 1}
    )
    group = Sockets(gate)
    sockets.append(group)
    for _ in range(500):
        _, writer = await group.open()
        writer.write(b"GET / HTTP/1.1\r\nHo")
    assert (await get(group, "/_consentgate/healthz")).startswith(b"HTTP/1.1 200")
    results = await asyncio.gather(*(closed_within(r, 8) for r, _ in group.opened[:500]))
    assert all(took is not None for took in results)
    await asyncio.sleep(0.2)
    assert len(gate.runner.guard) == 0


def test_accept_errors_are_logged_at_most_every_ten_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    passed: list[dict[str, object]] = []
    limiter = AcceptErrorLimiter(lambda loop, context: passed.append(context), lambda: now[0])
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="consentgate"):
            for _ in range(1000):
                limiter(loop, {"message": "socket.accept() out of system resource"})
                now[0] += 0.02  # 1,000 errors in 20 s
            limiter(loop, {"message": "something else"})
    finally:
        loop.close()
    lines = [r for r in caplog.records if "cannot accept" in r.getMessage()]
    assert len(lines) == 2
    assert passed == [{"message": "something else"}]
