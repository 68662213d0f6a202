"""``consentgate demo``: the gate in front of a demo proxy, all on loopback, one command.

Everything here except the gate is written for the demo only and says so on every
page: a *demo identity provider* (remembers who signed in, and then skips its
login — just as a real IdP that has seen the proxy's one client_id skips its
consent screen), a *demo single-client OAuth proxy* (dynamic registration, one
fixed upstream client_id, PKCE, a tiny bearer-protected ``/mcp`` endpoint), and a
*demo MCP client* page with two buttons: a normal sign-in, and "a link an
attacker sent you" that tries the confused-deputy attack.

SQLite and keys live in a temporary directory that is removed on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import secrets
import signal
import socket
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from consentgate.config.loading import config_from_mapping
from consentgate.config.model import Config
from consentgate.logs.loggers import configure_logging
from consentgate.serving.server import start
from consentgate.web.rendering.templates import Templates

log = logging.getLogger("consentgate")

#: The attacker's host in the demo: a name that reads as a foreign site, resolved to
#: loopback by the browser itself (``*.localhost``, RFC 6761 §6.3).
ATTACKER_HOST = "attacker.localhost"

DEMO_UPSTREAM_CLIENT_ID = "demo-proxy-upstream-client"
SCOPES = "mcp:tools profile"
#: The scopes the demo proxy asks the demo IdP for (the IdP ignores them).
DEMO_IDP_SCOPES = "openid profile email"
TEMPLATES = web.AppKey("demo_templates", Templates)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    body = request.app[TEMPLATES].render(f"demo/{template}", **context)
    response = web.Response(status=status, text=body, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
    )
    return response


# --- the demo identity provider ------------------------------------------------------------


@dataclass
class DemoIdP:
    """A third-party IdP: one registered client (the proxy), a login page, a session."""

    codes: dict[str, str] = field(default_factory=dict)  # code -> user
    sessions: dict[str, str] = field(default_factory=dict)  # cookie -> user

    def app(self, templates: Templates) -> web.Application:
        app = web.Application()
        app[TEMPLATES] = templates
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/authorize", self.login)
        app.router.add_post("/token", self.token)
        return app

    def _redirect_back(self, request: web.Request, user: str) -> web.HTTPFound:
        code = secrets.token_urlsafe(16)
        self.codes[code] = user
        query = urllib.parse.urlencode({"code": code, "state": request.query.get("state", "")})
        return web.HTTPFound(f"{request.query['redirect_uri']}?{query}")

    async def authorize(self, request: web.Request) -> web.Response:
        if request.query.get("client_id") != DEMO_UPSTREAM_CLIENT_ID:
            return _page(request, "message.html", 400, title="Demo IdP", text="Unknown client.")
        user = self.sessions.get(request.cookies.get("demo_idp_session", ""))
        if user is not None:
            # A real IdP that already knows the proxy's one client_id skips its
            # consent screen: exactly why the gate must ask first.
            raise self._redirect_back(request, user)
        return _page(request, "idp_login.html", action=request.path_qs)

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        user = str(form.get("user", "")).strip()[:40] or "alice"
        session = secrets.token_urlsafe(16)
        self.sessions[session] = user
        redirect = self._redirect_back(request, user)
        redirect.set_cookie("demo_idp_session", session, httponly=True, samesite="Lax")
        raise redirect

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        user = self.codes.pop(str(form.get("code", "")), None)
        if user is None:
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response({"user": user})


# --- the demo single-client OAuth proxy ------------------------------------------------------


@dataclass
class Txn:
    client_id: str
    redirect_uri: str
    state: str
    challenge: str


@dataclass
class DemoProxy:
    """A single-client OAuth proxy without consent of its own: what the gate protects."""

    idp_url: str
    public_url: str  # the gate's origin: the proxy builds every URL from it
    clients: dict[str, list[str]] = field(default_factory=dict)
    txns: dict[str, Txn] = field(default_factory=dict)
    codes: dict[str, tuple[Txn, str]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def app(self, templates: Templates) -> web.Application:
        app = web.Application()
        app[TEMPLATES] = templates
        app.router.add_get("/.well-known/oauth-authorization-server", self.metadata)
        app.router.add_post("/register", self.register)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_get("/auth/callback", self.callback)
        app.router.add_post("/token", self.token)
        app.router.add_route("*", "/mcp", self.mcp)
        return app

    async def metadata(self, request: web.Request) -> web.Response:
        base = self.public_url
        return web.json_response(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "registration_endpoint": f"{base}/register",
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def register(self, request: web.Request) -> web.Response:
        metadata = await request.json()
        uris = [u for u in metadata.get("redirect_uris", []) if isinstance(u, str)]
        if not uris:
            return web.json_response({"error": "invalid_redirect_uri"}, status=400)
        client_id = "demo-client-" + secrets.token_hex(6)
        self.clients[client_id] = uris
        answer = {**metadata, "client_id": client_id, "token_endpoint_auth_method": "none"}
        return web.json_response(answer, status=201)

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        txn = Txn(
            query.get("client_id", ""),
            query.get("redirect_uri", ""),
            query.get("state", ""),
            query.get("code_challenge", ""),
        )
        if not txn.challenge:
            return web.json_response({"error": "invalid_request"}, status=400)
        txn_id = secrets.token_urlsafe(16)
        self.txns[txn_id] = txn
        upstream = urllib.parse.urlencode(
            {
                "client_id": DEMO_UPSTREAM_CLIENT_ID,
                "redirect_uri": f"{self.public_url}/auth/callback",
                "state": txn_id,
                "response_type": "code",
                # What the proxy asks its IdP for: the gate shows it on the next
                # consent pages, under its own heading (the third-party scopes).
                "scope": DEMO_IDP_SCOPES,
            }
        )
        raise web.HTTPFound(f"{self.idp_url}/authorize?{upstream}")

    async def callback(self, request: web.Request) -> web.Response:
        txn = self.txns.pop(request.query.get("state", ""), None)
        if txn is None:
            return web.json_response({"error": "unknown transaction"}, status=400)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.idp_url}/token", data={"code": request.query.get("code", "")}
            ) as response,
        ):
            answer = await response.json()
        user = answer.get("user")
        if not isinstance(user, str):
            return web.json_response({"error": "idp refused the code"}, status=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = (txn, user)
        query = urllib.parse.urlencode({"code": code, "state": txn.state, "iss": self.public_url})
        raise web.HTTPFound(f"{txn.redirect_uri}?{query}")

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        entry = self.codes.pop(str(form.get("code", "")), None)
        verifier = str(form.get("code_verifier", ""))
        if entry is None:
            return web.json_response({"error": "invalid_grant"}, status=400)
        txn, user = entry
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        if challenge != txn.challenge or form.get("redirect_uri") != txn.redirect_uri:
            return web.json_response({"error": "invalid_grant"}, status=400)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = user
        return web.json_response({"access_token": token, "token_type": "Bearer"})

    async def mcp(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        user = self.tokens.get(token)
        if user is None:
            return web.json_response(
                {"error": "unauthorized"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return web.json_response({"result": f"Hello {user}, from the demo MCP server."})


# --- the demo MCP client ------------------------------------------------------------------


@dataclass
class DemoClient:
    """A browser-facing MCP client: registers by DCR through the gate, signs in with PKCE."""

    gate_url: str
    own_url: str
    client_id: str | None = None
    attacker_id: str | None = None
    flows: dict[str, str] = field(default_factory=dict)  # state -> code_verifier

    def app(self, templates: Templates) -> web.Application:
        app = web.Application()
        app[TEMPLATES] = templates
        app.router.add_get("/", self.home)
        app.router.add_get("/start", self.start)
        app.router.add_get("/attack", self.attack)
        app.router.add_get("/callback", self.callback)
        app.router.add_get("/stolen", self.stolen)
        return app

    @property
    def attacker_url(self) -> str:
        """Where the attacker's client receives codes: this server too, but named
        ``attacker.localhost``, which reads as another site yet stays on this computer
        (browsers resolve every ``*.localhost`` name to loopback without asking DNS,
        RFC 6761 §6.3). The gate reads the name as an ordinary host, not as "an
        application on this computer" (only ``localhost`` and loopback addresses are,
        RFC 8252 §7.3), so the consent page's headline host is what gives the attack
        away, as a real attacker's site would."""
        return self.own_url.replace("://127.0.0.1:", f"://{ATTACKER_HOST}:", 1)

    def _base(self, redirect_path: str) -> str:
        return self.attacker_url if redirect_path == "/stolen" else self.own_url

    async def _register(self, name: str, redirect_path: str) -> str:
        body = {"client_name": name, "redirect_uris": [self._base(redirect_path) + redirect_path]}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.gate_url}/register", json=body) as response,
        ):
            document = await response.json()
        client_id: str = document["client_id"]
        return client_id

    def _authorize_url(self, client_id: str, redirect_path: str) -> str:
        state = secrets.token_urlsafe(12)
        verifier = secrets.token_urlsafe(32)
        self.flows[state] = verifier
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": self._base(redirect_path) + redirect_path,
                "scope": SCOPES,
                "state": state,
                "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
                "code_challenge_method": "S256",
                "resource": f"{self.gate_url}/mcp",
            }
        )
        return f"{self.gate_url}/authorize?{query}"

    async def home(self, request: web.Request) -> web.Response:
        return _page(request, "client_home.html", gate_url=self.gate_url)

    async def start(self, request: web.Request) -> web.Response:
        if self.client_id is None:
            self.client_id = await self._register("Demo MCP Client", "/callback")
        raise web.HTTPFound(self._authorize_url(self.client_id, "/callback"))

    async def attack(self, request: web.Request) -> web.Response:
        if self.attacker_id is None:
            self.attacker_id = await self._register("Totally Legit Assistant", "/stolen")
        raise web.HTTPFound(self._authorize_url(self.attacker_id, "/stolen"))

    async def callback(self, request: web.Request) -> web.Response:
        query = request.query
        if "error" in query:
            return _page(
                request, "client_result.html", ok=False, text=f"Sign-in ended: {query['error']}."
            )
        verifier = self.flows.pop(query.get("state", ""), None)
        if verifier is None or "code" not in query:
            return _page(request, "client_result.html", 400, ok=False, text="Unknown sign-in.")
        form = {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": self.own_url + "/callback",
            "code_verifier": verifier,
            "client_id": self.client_id or "",
        }
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.gate_url}/token", data=form) as response:
                token = (await response.json()).get("access_token", "")
            async with session.post(
                f"{self.gate_url}/mcp", headers={"Authorization": f"Bearer {token}"}, json={}
            ) as response:
                result = (await response.json()).get("result", "the tool call failed")
        return _page(request, "client_result.html", ok=True, text=result)

    async def stolen(self, request: web.Request) -> web.Response:
        if "code" in request.query:
            text = (
                "The attacker's client just received an authorization code for your account. "
                "This is what happens when someone approves a client they do not know."
            )
        else:
            text = "The attacker's client received no code: the sign-in was refused."
        return _page(request, "client_result.html", ok="code" not in request.query, text=text)


# --- running it ---------------------------------------------------------------------------


@dataclass
class DemoStack:
    gate_url: str
    client_url: str
    proxy_url: str
    idp_url: str
    data_dir: Path
    config: Config


def _bind(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.asynccontextmanager
async def run_demo(
    port: int = 0,
    data_dir: Path | None = None,
    *,
    sections: Mapping[str, Mapping[str, Any]] | None = None,
) -> AsyncIterator[DemoStack]:
    """Start the four servers on 127.0.0.1; stop them and remove the data on exit.

    Every socket is bound before any server starts, so each server knows the
    others' URLs (the proxy builds its URLs from the gate's public origin).
    ``sections`` adds keys to the gate's configuration, section by section (``{"ui":
    {...}}``: the themed gate of tools/screenshots.py).
    """
    templates = Templates()
    runners: list[web.AppRunner] = []
    temporary: tempfile.TemporaryDirectory[str] | None = None
    if data_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="consentgate-demo-")
        data_dir = Path(temporary.name)
    directory = data_dir
    sockets = {
        name: _bind(port if name == "gate" else 0) for name in ("gate", "idp", "proxy", "client")
    }
    urls = {name: _url(sock) for name, sock in sockets.items()}

    async def serve(app: web.Application, name: str) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        await web.SockSite(runner, sockets[name]).start()

    try:
        await serve(DemoIdP().app(templates), "idp")
        await serve(DemoProxy(idp_url=urls["idp"], public_url=urls["gate"]).app(templates), "proxy")
        await serve(
            DemoClient(gate_url=urls["gate"], own_url=urls["client"]).app(templates), "client"
        )
        settings: dict[str, dict[str, Any]] = {
            "server": {
                "public_url": urls["gate"],
                "listen": urls["gate"].removeprefix("http://"),
            },
            "upstream": {"url": urls["proxy"]},
            "store": {"path": str(directory / "consentgate.sqlite3")},
            "keys": {"dir": str(directory / "keys")},
            "consent": {
                "service_name": "the Demo MCP Server",
                "scope_descriptions": {
                    "mcp:tools": "Use the server's tools on your behalf",
                    "profile": "See your user name",
                },
            },
        }
        for name, values in (sections or {}).items():
            settings[name] = {**settings.get(name, {}), **values}
        config = config_from_mapping(settings, environ={})
        runners.append(await start(config, sock=sockets["gate"]))
        yield DemoStack(urls["gate"], urls["client"], urls["proxy"], urls["idp"], directory, config)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        for sock in sockets.values():
            sock.close()
        if temporary is not None:
            temporary.cleanup()


async def demo_main(port: int, ready: Callable[[DemoStack], None]) -> None:
    """Run the demo until Ctrl-C or SIGTERM; ``ready`` announces it (the CLI prints)."""
    configure_logging(format="text", level="info")
    async with run_demo(port) as stack:
        ready(stack)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
