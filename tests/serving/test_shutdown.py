"""``shutdown_grace`` is the time from the signal to the exit.

A real ``consentgate serve`` process, a real SIGTERM, streams longer than the grace:
the process exits within the grace plus one second (for the interpreter to exit),
a request that can finish in the grace finishes, an event stream ends cleanly with a
last SSE comment, a body with a Content-Length is aborted (the client must see the
truncation), and each cut response has its log line.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from consentgate.web.relay import SHUTDOWN_COMMENT
from tests.conftest import StartUpstream
from tests.support.gateproc import gate_process

pytestmark = pytest.mark.slow  # a consentgate serve process, stopped within its grace

GRACE = 2.0
#: Long enough to outlast the grace several times, short enough to stop by itself.
STREAM_SECONDS = 20


@pytest.fixture
async def upstream(start_upstream: StartUpstream) -> str:
    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for n in range(STREAM_SECONDS * 10):
            await response.write(f"id: {n}\ndata: tick\n\n".encode())
            await asyncio.sleep(0.1)
        return response

    async def sized(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = STREAM_SECONDS * 10 * 100
        await response.prepare(request)
        for _ in range(STREAM_SECONDS * 10):
            await response.write(b"x" * 100)
            await asyncio.sleep(0.1)
        return response

    async def brief(request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.Response(text="finished in the grace")

    app = web.Application()
    app.router.add_get("/events", events)
    app.router.add_get("/sized", sized)
    app.router.add_get("/brief", brief)
    return await start_upstream(app)


async def read_all(response: aiohttp.ClientResponse) -> tuple[bytes, str | None]:
    """The body until its end, and the error that ended it instead, if any."""
    body = b""
    try:
        while chunk := await response.content.readany():
            body += chunk
    except aiohttp.ClientPayloadError as exc:
        return body, type(exc).__name__
    return body, None


async def test_sigterm_stops_within_the_grace_and_ends_streams_cleanly(
    tmp_path: Path, upstream: str
) -> None:
    sections: dict[str, dict[str, Any]] = {
        "server": {"shutdown_grace": GRACE},
        "log": {"access_log": True},
    }
    async with (
        gate_process(tmp_path, upstream, sections) as gate,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
    ):
        events = await session.get(f"{gate.url}/events")
        sized = await session.get(f"{gate.url}/sized")
        assert (events.status, sized.status) == (200, 200)
        await events.content.readuntil(b"\n\n")
        await sized.content.readexactly(100)
        brief = asyncio.create_task(session.get(f"{gate.url}/brief"))
        await asyncio.sleep(0.1)  # the brief request is in flight

        loop = asyncio.get_running_loop()
        signalled = loop.time()
        gate.process.send_signal(signal.SIGTERM)
        (event_body, event_error), (sized_body, sized_error), answered = await asyncio.gather(
            read_all(events), read_all(sized), brief
        )
        code = await asyncio.wait_for(gate.process.wait(), 10)
        took = loop.time() - signalled
        log = await gate.stderr_text()
        brief_text = await answered.text()
        for response in (events, sized, answered):
            response.release()

    assert code == 0
    assert took < GRACE + 1, f"exit {took:.2f} s after SIGTERM, grace {GRACE} s"
    assert took > GRACE - 0.5  # the streams were given the grace, not cut at once
    assert (answered.status, brief_text) == (200, "finished in the grace")
    # The event stream ended with its framing intact, and a last comment saying why.
    assert event_error is None
    assert event_body.endswith(b"\n\n" + SHUTDOWN_COMMENT)
    # The sized body cannot end early without lying about its length: it is aborted.
    assert sized_error is not None
    assert 100 < len(sized_body) < STREAM_SECONDS * 10 * 100
    cut = [line for line in log.splitlines() if "response cut at shutdown" in line]
    assert len(cut) == 2, log[-3000:]
    assert any("path=/events" in line and "ending=clean" in line for line in cut), cut
    assert any("path=/sized" in line and "ending=aborted" in line for line in cut), cut
    assert all("request_id=" in line and "bytes=" in line for line in cut)
    access = [line for line in log.splitlines() if " consentgate.access " in line]
    assert sum("ended=shutdown" in line for line in access) == 2, access
    assert "Traceback" not in log and "unhandled error" not in log
