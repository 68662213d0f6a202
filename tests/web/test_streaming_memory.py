"""A 200 MB upload and a 200 MB download pass through with the gate's memory flat.

The gate runs as its own process (``consentgate serve``) so its resident memory
can be read from /proc: a relay that buffered a body would grow by 200 MB.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import StartUpstream
from tests.support.gateproc import gate_process

SIZE = 200 * 1024 * 1024
CHUNK = 256 * 1024
#: Peak growth allowed over the idle gate; buffering would add 200 MB.
MAX_GROWTH_KIB = 48 * 1024

pytestmark = pytest.mark.slow


def sink_and_source_app(received: list[int]) -> web.Application:
    async def sink(request: web.Request) -> web.Response:
        total = 0
        async for chunk in request.content.iter_chunked(CHUNK):
            total += len(chunk)
        received.append(total)
        return web.Response(text=str(total))

    async def source(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = SIZE
        await response.prepare(request)
        block = b"\xab" * CHUNK
        for _ in range(SIZE // CHUNK):
            await response.write(block)
        await response.write_eof()
        return response

    app = web.Application(client_max_size=SIZE * 2)
    app.router.add_post("/upload", sink)
    app.router.add_get("/download", source)
    return app


async def upload_body() -> AsyncIterator[bytes]:
    block = b"\xcd" * CHUNK
    for _ in range(SIZE // CHUNK):
        yield block


async def test_200_mb_each_way_pass_with_flat_gate_memory(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    received: list[int] = []
    upstream = await start_upstream(sink_and_source_app(received))
    async with (
        gate_process(tmp_path, upstream, {"server": {"max_body_size": SIZE}}) as gate,
        aiohttp.ClientSession(auto_decompress=False) as session,
    ):
        # Warm the gate up so the baseline includes its steady-state buffers.
        async with session.get(f"{gate.url}/_consentgate/healthz") as warm:
            await warm.read()
        baseline = gate.memory_kib("VmRSS")

        async with session.post(
            f"{gate.url}/upload",
            data=upload_body(),
            headers={"Content-Length": str(SIZE)},
            timeout=aiohttp.ClientTimeout(total=300),
        ) as response:
            assert response.status == 200
            assert await response.text() == str(SIZE)
        assert received == [SIZE]

        downloaded = 0
        async with session.get(
            f"{gate.url}/download", timeout=aiohttp.ClientTimeout(total=300)
        ) as response:
            assert response.status == 200
            async for chunk in response.content.iter_chunked(CHUNK):
                downloaded += len(chunk)
                await asyncio.sleep(0)
        assert downloaded == SIZE

        peak = gate.memory_kib("VmHWM")
        growth = peak - baseline
        print(f"gate RSS baseline {baseline} KiB, peak {peak} KiB, growth {growth} KiB")
        assert growth < MAX_GROWTH_KIB
