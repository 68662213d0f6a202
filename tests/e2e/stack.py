"""The real peers on loopback: oidc-provider-mock as the IdP, FastMCP's OAuthProxy as the
single-client proxy, served by uvicorn in the test's event loop.

Facts these helpers rely on (fastmcp 4.2, oidc-provider-mock 0.3):

* the IdP runs in its own process (see ``idp_process.py`` for why); its one upstream
  client is registered through ``POST /oauth2/clients`` with the callback URL the
  browser will come back to, so that URL must be known before the proxy starts;
* the IdP's access tokens are opaque (no JWT, no introspection), so the proxy
  checks them by calling ``/userinfo``;
* ``OAuthProxy(require_authorization_consent="external")`` turns FastMCP's own
  consent page *and* its browser binding of the IdP callback off: that is the job
  of the gate in front of it. ``base_url`` is the public URL (the gate's), and
  FastMCP compares the ``resource`` parameter with ``base_url + "/mcp"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import select
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth import AccessToken, TokenVerifier
from fastmcp.server.auth.oauth_proxy import OAuthProxy
from fastmcp.server.dependencies import get_access_token
from key_value.aio.stores.memory import MemoryStore
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HOST = "127.0.0.1"
IDP_START_TIMEOUT = 30.0
#: The scope FastMCP asks the IdP for and requires on /mcp.
SCOPE = "openid"


# --- the upstream IdP -------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamClient:
    """The proxy's one client at the IdP."""

    client_id: str
    client_secret: str


@dataclass
class IdP:
    """oidc-provider-mock in its own process, registration required."""

    url: str
    process: subprocess.Popen[str] = field(repr=False)

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/oauth2/authorize"

    async def register_client(self, redirect_uri: str) -> UpstreamClient:
        """Register an upstream client whose only redirect URI is ``redirect_uri``."""
        body = {
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "client_secret_basic",
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/oauth2/clients", json=body) as response,
        ):
            assert response.status == 201, await response.text()
            document = await response.json()
        return UpstreamClient(document["client_id"], document["client_secret"])


@contextlib.contextmanager
def run_idp(log_path: Path, *, open_registration: bool = False) -> Iterator[IdP]:
    """Start the IdP process; stop it (close its stdin, then wait) on exit.
    ``open_registration``: any client_id and secret is accepted (oidc-provider-mock's
    default), as for the gate's own sign-in ([identity])."""
    script = Path(__file__).with_name("idp_process.py")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(script), *(["open"] if open_registration else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            url = _read_ready_line(process, log_path)
            yield IdP(url, process)
        finally:
            _stop_process(process)


def _read_ready_line(process: subprocess.Popen[str], log_path: Path) -> str:
    stdout: IO[str] | None = process.stdout
    assert stdout is not None
    readable, _, _ = select.select([stdout], [], [], IDP_START_TIMEOUT)
    line = stdout.readline().strip() if readable else ""
    if not line.startswith("READY "):
        raise RuntimeError(
            f"the IdP process did not start (printed {line!r}); its log:\n"
            + log_path.read_text()[-3000:]
        )
    url = line.removeprefix("READY ")
    assert url.startswith(f"http://{HOST}:"), url
    return url


def _stop_process(process: subprocess.Popen[str]) -> None:
    try:
        process.communicate(timeout=10)  # closes stdin: the IdP shuts down by itself
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


# --- the single-client OAuth proxy --------------------------------------------------------


class UserinfoVerifier(TokenVerifier):
    """Accepts an IdP access token when the IdP's ``/userinfo`` accepts it.

    oidc-provider-mock issues opaque access tokens and has no introspection
    endpoint; its ``/userinfo`` answers an unknown token with 400 (not 401), so
    anything but 200 means invalid. ``/userinfo`` does not echo scopes: the proxy
    asked the IdP for exactly ``required_scopes``, so those are reported.
    """

    def __init__(self, userinfo_url: str, upstream_client_id: str) -> None:
        super().__init__(required_scopes=[SCOPE])
        self.userinfo_url = userinfo_url
        self.upstream_client_id = upstream_client_id
        self._session: aiohttp.ClientSession | None = None

    async def verify_token(self, token: str) -> AccessToken | None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.get(
            self.userinfo_url, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            if response.status != 200:
                return None
            claims: dict[str, Any] = await response.json()
        return AccessToken(
            token=token,
            client_id=self.upstream_client_id,
            scopes=list(self.required_scopes),
            subject=claims.get("sub"),
            claims=claims,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def build_fastmcp(
    *, idp: IdP, upstream: UpstreamClient, public_url: str
) -> tuple[FastMCP[Any], UserinfoVerifier]:
    """FastMCP with OAuthProxy, consent left to the outside, and two tools."""
    verifier = UserinfoVerifier(f"{idp.url}/userinfo", upstream.client_id)
    auth = OAuthProxy(
        upstream_authorization_endpoint=idp.authorize_url,
        upstream_token_endpoint=f"{idp.url}/oauth2/token",
        upstream_client_id=upstream.client_id,
        upstream_client_secret=upstream.client_secret,
        token_verifier=verifier,
        base_url=public_url,
        require_authorization_consent="external",
        # The default storage is a file tree under the user's data directory that
        # outlives the test; bytes as the signing key skip a 1e6-round PBKDF2.
        client_storage=MemoryStore(),
        jwt_signing_key=secrets.token_bytes(32),
    )
    mcp: FastMCP[Any] = FastMCP("consentgate-e2e", auth=auth)

    @mcp.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @mcp.tool
    def whoami() -> dict[str, str | None]:
        """The IdP subject behind the caller's token."""
        token = get_access_token()
        return {"subject": token.subject if token else None}

    return mcp, verifier


@dataclass(frozen=True)
class Arrival:
    method: str
    path: str
    query: str
    #: Whether it carries the gate's X-Request-Id: it came through the gate.
    via_gate: bool = False


class RequestLog:
    """ASGI wrapper: records every HTTP request the proxy receives, and tells when the
    application has finished starting (the lifespan startup completed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.arrivals: list[Arrival] = []
        self.started = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {name.lower() for name, _ in scope["headers"]}
            self.arrivals.append(
                Arrival(
                    scope["method"],
                    scope["path"],
                    scope["query_string"].decode("latin-1"),
                    b"x-request-id" in headers,
                )
            )
        elif scope["type"] == "lifespan":
            send = self._watch_lifespan(send)
        await self.app(scope, receive, send)

    def _watch_lifespan(self, send: Send) -> Send:
        async def watched(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                self.started.set()

        return watched

    def reached(self, path: str) -> list[Arrival]:
        """Requests whose path, compared case-insensitively, is ``path``."""
        return [a for a in self.arrivals if a.path.rstrip("/").lower() == path.lower()]


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: pytest keeps Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class FastMcpServer:
    """A running FastMCP + OAuthProxy."""

    url: str  # where it listens
    public_url: str  # its base_url: the gate's URL, or its own without a gate
    upstream: UpstreamClient
    log: RequestLog

    @property
    def mcp_url(self) -> str:
        return f"{self.public_url}/mcp"


@contextlib.asynccontextmanager
async def run_fastmcp(
    sock: socket.socket, *, idp: IdP, upstream: UpstreamClient, public_url: str
) -> AsyncIterator[FastMcpServer]:
    """Serve FastMCP on an already listening loopback socket until the block ends."""
    host, port = sock.getsockname()[:2]
    assert host == HOST
    mcp, verifier = build_fastmcp(idp=idp, upstream=upstream, public_url=public_url)
    log = RequestLog(mcp.http_app(path="/mcp"))
    config = uvicorn.Config(
        log,
        lifespan="on",
        ws="none",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = _EmbeddedServer(config)

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits the process when startup fails
            raise RuntimeError("FastMCP did not start (see the log above)") from exc

    serving = asyncio.create_task(serve(), name="fastmcp")
    started = asyncio.create_task(log.started.wait())
    try:
        await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED, timeout=30)
        if serving.done():
            serving.result()  # raises why it stopped
        assert started.done(), "FastMCP did not finish starting within 30 s"
        yield FastMcpServer(f"http://{HOST}:{port}", public_url.rstrip("/"), upstream, log)
    finally:
        started.cancel()
        server.should_exit = True
        if not serving.done():
            await serving
        await verifier.close()
