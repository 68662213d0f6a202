"""The benchmark's upstream: an aiohttp server playing the single-client OAuth proxy.

``python -m bench.upstream --port N``. Endpoints:

* ``GET /small``  a small JSON document (about 100 bytes);
* ``GET /big``    1 MiB of bytes (``application/octet-stream``);
* ``POST /echo``  reads the whole body and answers a small JSON document;
* ``GET /sse``    an event stream: one event at once, then silence for 30 s (the
  benchmark client disconnects after the first event; the server runs with
  ``handler_cancellation`` so the stream ends with the connection);
* ``GET /authorize``  302 to a third-party IdP as a real OAuth proxy answers (a
  FastMCP OAuthProxy with its own consent off): a ``Location`` of about 366 bytes
  with a fresh ``state`` and PKCE challenge, the upstream's own ``client_id``, its
  callback, the IdP scopes and the ``resource``. It keeps no transaction (the
  benchmark never calls back, and memory must stay flat). A request carrying
  ``X-Bench-Authorize: short`` gets the former short answer instead (``state``,
  ``client_id``, ``redirect_uri``, ``response_type``: about 150 bytes), the
  ``authorize-short`` scenario of bench/run.py;
* ``POST /register``  201 with a client_id, for completeness;
* ``/.well-known/oauth-authorization-server``  the issuer.

Every body is built once at start-up, the access log is off: the upstream has to
be as cheap as it can be, it shares a core with the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import urllib.parse

from aiohttp import web

IDP = "https://idp.example/oauth2/authorize"
SMALL = json.dumps(
    {"jsonrpc": "2.0", "id": 1, "result": {"tools": ["search", "fetch"], "ok": True}}
).encode()
BIG = bytes(range(256)) * 4096  # 1 MiB
FIRST_EVENT = b'event: message\ndata: {"jsonrpc":"2.0","method":"ready"}\n\n'
SSE_SILENCE = 30.0
PUBLIC_URL = web.AppKey("public_url", str)


async def small(request: web.Request) -> web.Response:
    return web.Response(body=SMALL, content_type="application/json")


async def big(request: web.Request) -> web.Response:
    return web.Response(body=BIG, content_type="application/octet-stream")


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(
        body=b'{"received":%d}' % len(body),
        content_type="application/json",
    )


async def sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    response.headers["Cache-Control"] = "no-cache"
    await response.prepare(request)
    await response.write(FIRST_EVENT)
    await asyncio.sleep(SSE_SILENCE)
    await response.write_eof()
    return response


def _public_origin(request: web.Request) -> str:
    """Where the browser reaches this proxy: the gate's forwarded host when it relays
    (one upstream serves gates on several ports), else ``--public-url``."""
    host = request.headers.get("X-Forwarded-Host")
    if host is None:
        return request.app[PUBLIC_URL]
    return f"{request.headers.get('X-Forwarded-Proto', 'http')}://{host}"


#: The header that asks for the short answer (:func:`short_authorize_location`).
SHORT_HEADER = "X-Bench-Authorize"
#: What an IdP registration of a real proxy looks like: an opaque client id, the
#: scopes it asks the IdP for, and the MCP server it protects (RFC 8707 resource).
IDP_CLIENT_ID = "0oa8f3kx2LmQ7rT9b5d7"
IDP_SCOPES = "openid profile email offline_access"


def authorize_location(public_origin: str) -> str:
    """The IdP authorization URL a FastMCP OAuthProxy answers ``/authorize`` with:
    fresh ``state`` and PKCE challenge per transaction (43 characters each, 32 random
    bytes), its callback on the public origin, the IdP scopes and the ``resource``
    (about 366 bytes behind ``http://127.0.0.1:PORT``)."""
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": IDP_CLIENT_ID,
            "redirect_uri": public_origin + "/auth/callback",
            "state": secrets.token_urlsafe(32),
            "scope": IDP_SCOPES,
            "code_challenge": secrets.token_urlsafe(32),
            "code_challenge_method": "S256",
            "resource": public_origin + "/mcp",
        }
    )
    return f"{IDP}?{query}"


def short_authorize_location(public_origin: str) -> str:
    """The benchmark's former answer: four parameters, a 16-character state."""
    query = urllib.parse.urlencode(
        {
            "client_id": "fixed-upstream-client",
            "redirect_uri": public_origin + "/auth/callback",
            "state": secrets.token_urlsafe(12),
            "response_type": "code",
        }
    )
    return f"{IDP}?{query}"


async def authorize(request: web.Request) -> web.Response:
    origin = _public_origin(request)
    short = request.headers.get(SHORT_HEADER) == "short"
    location = short_authorize_location(origin) if short else authorize_location(origin)
    return web.Response(status=302, headers={"Location": location})


async def register(request: web.Request) -> web.Response:
    metadata = await request.json()
    answer = {**metadata, "client_id": "client-" + secrets.token_hex(6)}
    return web.json_response(answer, status=201)


async def metadata(request: web.Request) -> web.Response:
    return web.json_response(
        {"issuer": "https://proxy.example", "authorization_endpoint": "/authorize"}
    )


def make_app(public_url: str) -> web.Application:
    app = web.Application()
    app[PUBLIC_URL] = public_url
    app.router.add_get("/small", small)
    app.router.add_get("/big", big)
    app.router.add_post("/echo", echo)
    app.router.add_get("/sse", sse)
    app.router.add_get("/authorize", authorize)
    app.router.add_post("/register", register)
    app.router.add_get("/.well-known/oauth-authorization-server", metadata)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--public-url", default="http://127.0.0.1")
    args = parser.parse_args()
    web.run_app(
        make_app(args.public_url),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        handler_cancellation=True,
    )


if __name__ == "__main__":
    main()
