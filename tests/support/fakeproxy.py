"""A small single-client OAuth proxy, written for the tests, that behaves like FastMCP's
OAuthProxy with its own consent turned off (``require_authorization_consent="external"``).

* ``POST /register`` (RFC 7591): accepts any client, answers 201 with a new
  client_id, a client_secret and the metadata;
* ``GET /authorize``: accepts any client_id (the upstream's own fixed id too) and
  answers 302 to the third-party IdP with its OWN ``state`` (a transaction id),
  its one fixed upstream client_id, and its callback as redirect_uri;
* ``GET /auth/callback?code=..&state=<txn>``: 302 to the client's redirect_uri with
  a code and the client's original state;
* ``/consent``: FastMCP keeps serving its own consent page even with consent off;
* ``/.well-known/oauth-authorization-server``: the issuer;
* ``/login-redirect``: any other redirect to the IdP that carries a ``state``.

Every request is recorded so tests can assert what reached the upstream.
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDictProxy

IDP = "https://idp.example/oauth2/authorize"
UPSTREAM_CLIENT_ID = "fixed-upstream-client"


@dataclass
class Arrival:
    method: str
    raw_path: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class Transaction:
    client_id: str
    redirect_uri: str
    client_state: str | None
    query: dict[str, str]


@dataclass
class FakeProxy:
    public_url: str = ""  # set once the gate's URL is known
    arrivals: list[Arrival] = field(default_factory=list)
    transactions: dict[str, Transaction] = field(default_factory=dict)
    registration_bodies: list[bytes] = field(default_factory=list)
    issuer: str = "https://proxy.example"
    #: The ``scope`` the proxy asks its IdP for in the hand-off (None: none named).
    idp_scope: str | None = None

    def reached(self, path: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.raw_path.split("?")[0] == path]

    def app(self) -> web.Application:
        app = web.Application()
        app.middlewares.append(self._record)
        app.router.add_post("/register", self._register)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/authorize", self._authorize)
        app.router.add_get("/auth/callback", self._callback)
        app.router.add_get("/consent", self._consent)
        app.router.add_get("/login-redirect", self._login_redirect)
        app.router.add_get("/.well-known/oauth-authorization-server", self._metadata)
        app.router.add_route("*", "/{tail:.*}", self._anything)
        return app

    @web.middleware
    async def _record(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        body = await request.read()
        self.arrivals.append(Arrival(request.method, request.raw_path, request.headers, body))
        response: web.StreamResponse = await handler(request)
        return response

    async def _register(self, request: web.Request) -> web.Response:
        metadata = json.loads(await request.read())
        answer = {
            **metadata,
            "client_id": "client-" + secrets.token_hex(6),
            "client_secret": "secret-" + secrets.token_hex(8),
            "client_id_issued_at": 1_700_000_000,
            "token_endpoint_auth_method": "client_secret_post",
        }
        body = json.dumps(answer, indent=1).encode()
        self.registration_bodies.append(body)
        return web.Response(status=201, body=body, content_type="application/json")

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        if request.method == "POST":
            query.update(dict(await request.post()))  # type: ignore[arg-type]
        txn = secrets.token_urlsafe(12)
        self.transactions[txn] = Transaction(
            query.get("client_id", ""), query.get("redirect_uri", ""), query.get("state"), query
        )
        handoff = {
            "client_id": UPSTREAM_CLIENT_ID,
            "redirect_uri": f"{self.public_url}/auth/callback",
            "state": txn,
            "response_type": "code",
        }
        if self.idp_scope is not None:
            handoff["scope"] = self.idp_scope
        target = IDP + "?" + urllib.parse.urlencode(handoff)
        raise web.HTTPFound(target)

    async def _callback(self, request: web.Request) -> web.Response:
        txn = self.transactions.get(request.query.get("state", ""))
        if txn is None:
            return web.Response(status=400, text="unknown transaction")
        query = {"code": "proxy-code-" + secrets.token_hex(4)}
        if txn.client_state is not None:
            query["state"] = txn.client_state
        raise web.HTTPFound(txn.redirect_uri + "?" + urllib.parse.urlencode(query))

    async def _consent(self, request: web.Request) -> web.Response:
        return web.Response(text="the upstream's own consent page")

    async def _login_redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(IDP + "?state=not-from-an-authorize&client_id=x")

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.issuer, "authorization_endpoint": "/authorize"})

    async def _anything(self, request: web.Request) -> web.Response:
        return web.Response(text="upstream")
