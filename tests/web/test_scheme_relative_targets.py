"""A request target that begins with two slashes is refused before anything is relayed.

``//x/authorize`` is a network-path reference (RFC 3986 §4.2): an upstream that reads
its request target as a URL reference (Node's ``new URL(req.url, base)``, Python's
``urllib.parse.urlsplit``, yarl) takes ``x`` for a host and routes ``/authorize``,
while a router that collapses slashes, and the gate's own loose reading, see the
harmless ``/x/authorize``. The upstream here routes as such an application does.
"""

from __future__ import annotations

import urllib.parse

import pytest
from aiohttp import web

from tests.conftest import ErrorLog, StartGate, StartUpstream
from tests.support import rawhttp


class UrlRoutingUpstream:
    """An upstream that routes by ``urlsplit(target).path`` and records every arrival."""

    def __init__(self) -> None:
        self.arrivals: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        if request.raw_path == "/.well-known/oauth-authorization-server":
            # The gate's own start-up read of the metadata, not a client's request.
            raise web.HTTPNotFound
        self.arrivals.append(request.raw_path)
        routed = urllib.parse.urlsplit(request.raw_path).path
        if routed == "/authorize":
            # The single-client proxy sends the browser on to the IdP with its client_id.
            raise web.HTTPFound("https://idp.example/authorize?client_id=shared")
        if routed == "/auth/callback":
            return web.Response(text="code exchanged")
        return web.Response(text=f"routed {routed}")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.mark.parametrize(
    "target",
    [
        "//x/authorize?client_id=c&redirect_uri=https%3A%2F%2Fattacker.example%2Fcb",
        "//x/auth/callback?code=c&state=s",
        "///x/authorize?client_id=c",
        "/\\x/authorize?client_id=c",
        "/%2Fx/authorize?client_id=c",
        "/%5C%5Cx/auth/callback?code=c&state=s",
    ],
)
async def test_a_target_beginning_with_two_slashes_is_refused_and_reaches_nothing(
    error_log: ErrorLog, start_upstream: StartUpstream, start_gate: StartGate, target: str
) -> None:
    upstream = UrlRoutingUpstream()
    gate = await start_gate(await start_upstream(upstream.app()))
    # Relayed, the target would have been routed to the authorization endpoint or
    # the callback: the upstream's own reading, shown on a request sent to it directly.
    direct = await rawhttp.request(await start_upstream(upstream.app()), "//x/authorize")
    assert direct.status == 302
    upstream.arrivals.clear()

    response = await rawhttp.request(gate.url, target, headers=[("Accept", "text/html")])

    assert response.status == 400
    assert response.headers["Content-Type"].startswith("text/html")  # the gate's error page
    assert "different servers read differently, so it is refused" in error_log(response)
    assert upstream.arrivals == []


@pytest.mark.parametrize("target", ["%2F%2Fx/authorize?client_id=c", "\\\\x/authorize"])
async def test_a_target_that_does_not_begin_with_a_slash_is_refused_by_the_parser_already(
    start_upstream: StartUpstream, start_gate: StartGate, target: str
) -> None:
    upstream = UrlRoutingUpstream()
    gate = await start_gate(await start_upstream(upstream.app()))
    response = await rawhttp.request(gate.url, target)
    assert response.status == 400
    assert b"authorize" not in response.body  # the short 400 of web/guards/malformed.py
    assert upstream.arrivals == []


async def test_an_ordinary_path_still_reaches_the_url_routing_upstream(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    upstream = UrlRoutingUpstream()
    gate = await start_gate(await start_upstream(upstream.app()))
    response = await rawhttp.request(gate.url, "/x//authorize")
    assert (response.status, response.body) == (200, b"routed /x//authorize")
    assert upstream.arrivals == ["/x//authorize"]
