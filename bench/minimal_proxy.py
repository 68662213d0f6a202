"""The floor: the smallest aiohttp reverse proxy that relays correctly enough to compare.

``python -m bench.minimal_proxy --port N --upstream http://127.0.0.1:M``.
One shared session (no cookie jar, no decompression), hop-by-hop headers dropped,
raw path forwarded, bodies streamed both ways, client disconnects cancel the
upstream request. No path rules, no header sanitising, no request id, no access
log, no timeouts: whatever the gate costs above this is the price of its rules.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from yarl import URL

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)
HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "host", "proxy-authenticate", "proxy-authorization"}
)


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    app[SESSION] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256, limit_per_host=0),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
    )
    yield
    await app[SESSION].close()


async def handle(request: web.Request) -> web.StreamResponse:
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP]
    session = request.app[SESSION]
    async with session.request(
        request.method,
        URL(request.app[UPSTREAM] + request.raw_path, encoded=True),
        headers=headers,
        data=request.content if request.body_exists else None,
        allow_redirects=False,
    ) as upstream:
        response = web.StreamResponse(status=upstream.status)
        response.headers.extend((k, v) for k, v in upstream.headers.items() if k.lower() not in HOP)
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


def proxy_app(upstream: str, *, before: tuple[web.RouteDef, ...] = ()) -> web.Application:
    """The proxy's application relaying to ``upstream``; ``before`` are routes that
    take their paths first (bench/floor_gate.py's ``/authorize``)."""
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_routes(before)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def run(app: web.Application, port: int) -> None:
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        handler_cancellation=True,
        auto_decompress=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    run(proxy_app(args.upstream), args.port)


if __name__ == "__main__":
    main()
