"""Load drivers for the two scenarios wrk cannot measure.

``python -m bench.drivers sse|approve --port N --connections C --duration S ...``
prints one line ``BENCH_JSON {...}`` (the same shape as bench/wrk/report.lua).

Why not wrk for these:

* **time to first event** — wrk times a response until it is complete, and an
  event stream is not meant to complete. This driver opens a connection, sends
  the request, stops the clock at the end of the first event (``\\n\\n``) and
  closes the connection, as an MCP client that got what it waited for would;
* **approve POST** — every answer needs a fresh sealed page and CSRF token from a
  render, each usable once, bound to the browser cookie. A wrk Lua script would
  have to parse the page and keep per-connection cookie state in ``response()``,
  which wrk calls with the whole body for every response; that is possible but
  hard to prove correct, and a mistake would silently measure 403 pages. Here
  each worker is one browser: it GETs the consent page, reads the pending id, the
  seal and the token, POSTs the approval with the CSRF cookie and checks the 303 to the IdP.

Both use a small raw HTTP/1.1 client on asyncio streams (keep-alive,
Content-Length and chunked bodies) rather than aiohttp's client: it costs a
fraction of aiohttp's per-request CPU, and the driver shares a core with the
upstream. It is the same driver for every column, so ratios stay fair.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from dataclasses import dataclass, field

FORM_FIELD = re.compile(rb'<input type="hidden" name="(\w+)" value="([^"]*)">')


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._reader = None

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> Response:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        response = await read_response(self._reader)
        if (response.header("connection") or "").lower() == "close":
            await self.close()
        return response


async def read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]]]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = []
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    return status, headers


async def read_response(reader: asyncio.StreamReader) -> Response:
    status, headers = await read_head(reader)
    response = Response(status, headers, b"")
    length = response.header("content-length")
    if length is not None:
        response.body = await reader.readexactly(int(length))
    elif (response.header("transfer-encoding") or "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers are expected
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        response.body = b"".join(parts)
    elif status not in (204, 304):
        response.body = await reader.read()
    return response


@dataclass
class Tally:
    latencies_us: list[float] = field(default_factory=list)
    second_us: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    def failed(self, why: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = why


async def run_workers(worker: type[Worker], args: argparse.Namespace) -> tuple[Tally, float]:
    tally = Tally()
    stop_at = time.perf_counter() + args.duration
    workers = [worker(args, tally, stop_at) for _ in range(args.connections)]
    started = time.perf_counter()
    await asyncio.gather(*(w.run() for w in workers))
    return tally, time.perf_counter() - started


class Worker:
    def __init__(self, args: argparse.Namespace, tally: Tally, stop_at: float) -> None:
        self.args = args
        self.tally = tally
        self.stop_at = stop_at

    async def run(self) -> None:
        raise NotImplementedError


class SseWorker(Worker):
    """Open a stream, time the first event, hang up; again until the time is up."""

    async def run(self) -> None:
        request = (
            f"GET {self.args.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.args.port}\r\n"
            "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        ).encode()
        while time.perf_counter() < self.stop_at:
            started = time.perf_counter()
            writer: asyncio.StreamWriter | None = None
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.args.port)
                writer.write(request)
                status, _ = await read_head(reader)
                if status != 200:
                    self.tally.failed(f"status {status}")
                    continue
                await reader.readuntil(b"\n\n")
                self.tally.latencies_us.append((time.perf_counter() - started) * 1e6)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                self.tally.failed(type(exc).__name__)
                await asyncio.sleep(0.01)
            finally:
                if writer is not None:
                    writer.close()


class ApproveWorker(Worker):
    """One browser: render the consent page, approve it, check the 303 to the IdP."""

    async def run(self) -> None:
        conn = Connection("127.0.0.1", self.args.port)
        origin = f"http://127.0.0.1:{self.args.port}"
        browser_cookie = ""
        try:
            while time.perf_counter() < self.stop_at:
                started = time.perf_counter()
                cookies = [("Cookie", browser_cookie)] if browser_cookie else []
                page = await conn.request(
                    "GET", self.args.path, [("Accept", "text/html"), *cookies]
                )
                fields = {k.decode(): v.decode() for k, v in FORM_FIELD.findall(page.body)}
                if page.status != 200 or "pending" not in fields:
                    self.tally.failed(f"render answered {page.status}")
                    continue
                for set_cookie in page.all("set-cookie"):
                    pair = set_cookie.split(";", 1)[0]
                    if pair.startswith("cg_bid="):
                        browser_cookie = pair
                pending, csrf = fields["pending"], fields["csrf"]
                sealed = fields["sealed"]
                form = f"pending={pending}&sealed={sealed}&csrf={csrf}&decision=approve".encode()
                posted = time.perf_counter()
                answer = await conn.request(
                    "POST",
                    self.args.prefix + "/consent",
                    [
                        ("Content-Type", "application/x-www-form-urlencoded"),
                        ("Origin", origin),
                        ("Sec-Fetch-Site", "same-origin"),
                        ("Cookie", f"{browser_cookie}; cg_p_{pending}={csrf}"),
                    ],
                    form,
                )
                done = time.perf_counter()
                location = answer.header("location") or ""
                if answer.status != 303 or not location.startswith(self.args.expect_location):
                    self.tally.failed(f"approve answered {answer.status} {location[:60]}")
                    continue
                self.tally.latencies_us.append((done - started) * 1e6)
                self.tally.second_us.append((done - posted) * 1e6)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.tally.failed(type(exc).__name__)
        finally:
            await conn.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("sse", "approve"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--path", required=True, help="request target (path and query)")
    parser.add_argument("--prefix", default="/_consentgate")
    parser.add_argument("--expect-location", default="https://idp.example/")
    args = parser.parse_args()
    worker: type[Worker] = SseWorker if args.mode == "sse" else ApproveWorker
    tally, elapsed = asyncio.run(run_workers(worker, args))
    lat = tally.latencies_us
    result = {
        "requests": len(lat),
        "duration_us": int(elapsed * 1e6),
        "p50_us": percentile(lat, 50),
        "p99_us": percentile(lat, 99),
        "mean_us": statistics.fmean(lat) if lat else 0.0,
        "max_us": max(lat, default=0.0),
        "status_errors": tally.errors,
        "first_error": tally.first_error,
        "post_p50_us": percentile(tally.second_us, 50),
        "post_p99_us": percentile(tally.second_us, 99),
    }
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
