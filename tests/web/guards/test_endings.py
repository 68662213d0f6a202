"""A client that goes away is not an error: one INFO line saying
what was sent, one access line with status 499, no traceback, no 500."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from aiohttp import web

from tests.conftest import StartGate, StartUpstream


def records_of(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


async def until(condition: Callable[[], bool], seconds: float = 5) -> None:
    """Wait, bounded, for something the gate does after the client left."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the gate did not get there in time")


async def open_request(
    gate_url: str, target: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = int(gate_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: gate\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


def went_away(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in records_of(caplog, "consentgate") if r.getMessage() == "client went away"]


def assert_no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "upstream response broke off" not in warnings


async def test_a_client_that_drops_in_the_middle_of_a_stream_is_logged_as_499(
    start_upstream: StartUpstream, start_gate: StartGate, caplog: pytest.LogCaptureFixture
) -> None:
    stream_ended = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for n in range(200):  # at most 10 s
                await response.write(f"data: {n}\n\n".encode())
                await asyncio.sleep(0.05)
        finally:
            stream_ended.set()
        return response

    app = web.Application()
    app.router.add_get("/sse", events)
    gate = await start_gate(await start_upstream(app))
    caplog.set_level(logging.INFO, logger="consentgate")
    reader, writer = await open_request(gate.url, "/sse?token=SECRET")
    received = b""
    while received.count(b"data: ") < 2:
        received += await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    await until(lambda: bool(went_away(caplog)))
    await asyncio.wait_for(stream_ended.wait(), 5)  # the upstream stream was let go

    (line,) = went_away(caplog)
    assert line.levelno == logging.INFO
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["while"] == "sending the response"
    assert fields["bytes"] >= len(b"data: 0\n\ndata: 1\n\n")
    assert fields["path"] == "/sse?token=[redacted]"
    (access,) = records_of(caplog, "consentgate.access")
    assert access.fields["status"] == 499  # type: ignore[attr-defined]
    assert access.fields["ended"] == "client"  # type: ignore[attr-defined]
    assert access.fields["request_id"] == fields["request_id"]  # type: ignore[attr-defined]
    assert_no_error_logged(caplog)


async def test_a_client_that_drops_while_waiting_for_the_upstream_is_logged_as_499(
    start_upstream: StartUpstream, start_gate: StartGate, caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return web.Response(text="never")

    app = web.Application()
    app.router.add_get("/slow", slow)
    gate = await start_gate(await start_upstream(app))
    caplog.set_level(logging.INFO, logger="consentgate")
    _, writer = await open_request(gate.url, "/slow")
    await asyncio.wait_for(started.wait(), 5)
    writer.close()
    await asyncio.wait_for(cancelled.wait(), 5)  # the upstream request was cancelled
    await until(lambda: bool(went_away(caplog)))

    (line,) = went_away(caplog)
    assert line.fields["while"] == "before it"  # type: ignore[attr-defined]
    assert line.fields["bytes"] == 0  # type: ignore[attr-defined]
    (access,) = records_of(caplog, "consentgate.access")
    assert access.fields["status"] == 499  # type: ignore[attr-defined]
    assert_no_error_logged(caplog)
