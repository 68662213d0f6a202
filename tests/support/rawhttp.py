"""A tiny HTTP/1.1 client on raw sockets, for tests that must control every byte.

aiohttp's client normalises what it sends (it will not send a hop-by-hop header
of our choosing, or a path with dot segments); these tests need the exact bytes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from multidict import CIMultiDict


@dataclass
class RawResponse:
    status: int
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes = b""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readline()
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readline()
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def request(
    url: str,
    target: str,
    *,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    timeout: float = 10.0,
    host_header: str | None = None,
) -> RawResponse:
    """Send one request with exactly this target and these headers; read the response."""
    host_port = url.split("://", 1)[1]
    host, _, port = host_port.rpartition(":")
    reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    try:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header or host_port}"]
        sent = headers or []
        lines += [f"{name}: {value}" for name, value in sent]
        if body and not any(name.lower() == "transfer-encoding" for name, _ in sent):
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        async with asyncio.timeout(timeout):
            status_line = await reader.readline()
            status = int(status_line.split()[1])
            response_headers: CIMultiDict[str] = CIMultiDict()
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                response_headers.add(name.strip(), value.strip())
            if method == "HEAD" or status in (204, 304):
                data = b""
            elif response_headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = await _read_chunked(reader)
            elif "Content-Length" in response_headers:
                data = await reader.readexactly(int(response_headers["Content-Length"]))
            else:
                data = await reader.read()
        return RawResponse(status, response_headers, data)
    finally:
        writer.close()
