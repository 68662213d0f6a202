"""The people in the end-to-end tests and what their browsers do.

A :class:`Person` has one browser profile (``tests.support.browsersim.Browser``: its own
cookie jar, the ``Sec-Fetch-Site`` header a real browser sends, the gate's consent
form read back from the page) and an account at the IdP. Their browser follows
redirects one hop at a time, so every hop can be asserted; at the IdP's login
form it signs in as the person (oidc-provider-mock's form has no action and no
CSRF token: the browser posts ``sub`` back to the same URL, query included).

:class:`BrowserOAuth` is FastMCP's client OAuth with the "open a browser" step
done by such a person, and :class:`Attacker` is the other side of the confused
deputy: a DCR client whose redirect URI is a listener it runs on loopback.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import urllib.parse
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from fastmcp import Client
from fastmcp.client.auth import BearerAuth, OAuth
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

from tests.conftest import bound_socket
from tests.e2e.stack import HOST, SCOPE, IdP
from tests.support.browsersim import Browser, Page

MAX_HOPS = 12


@dataclass(frozen=True)
class Hop:
    method: str
    url: str
    page: Page

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.url).path


@dataclass
class Trip:
    """Where a browser went: every request it made, and the URL it stopped before."""

    hops: list[Hop] = field(default_factory=list)
    stopped_before: str = ""

    @property
    def last(self) -> Page:
        return self.hops[-1].page

    def query_of_stop(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.stopped_before).query))

    def visited(self, prefix: str) -> bool:
        return any(hop.url.startswith(prefix) for hop in self.hops)


@dataclass
class SignIn:
    """One sign-in a person did for an application."""

    trip: Trip
    consent_page: Page | None  # the gate's consent page, when it asked

    @property
    def result(self) -> dict[str, str]:
        """The query the application's redirect URI received."""
        return self.trip.query_of_stop()


class Person:
    """Someone with a browser and an account at the IdP."""

    def __init__(self, browser: Browser, idp: IdP, subject: str) -> None:
        self.browser = browser
        self.idp = idp
        self.subject = subject
        self.sign_ins: list[SignIn] = []

    async def browse(
        self, url: str, *, site: str = "none", stop_before: tuple[str, ...] = ()
    ) -> Trip:
        """Navigate to ``url`` and follow redirects, signing in at the IdP when it asks.

        Stops at the first page that is neither a redirect nor the IdP's login form,
        or before fetching a URL that starts with one of ``stop_before`` (an
        application's redirect URI nobody listens on). Every URL must be on
        loopback: a test that goes wrong must not send a browser anywhere else.
        """
        trip = Trip()
        for _ in range(MAX_HOPS):
            if stop_before and url.startswith(stop_before):
                trip.stopped_before = url
                return trip
            host = urllib.parse.urlsplit(url).hostname
            assert host == HOST, f"the browser was sent off loopback, to {url}"
            page = await self.browser.get(url, site=site)
            trip.hops.append(Hop("GET", url, page))
            # Every later hop is the tail of a redirect chain that left the site
            # (to the IdP and back): a browser labels those cross-site.
            site = "cross-site"
            if self._is_idp_login_form(url, page):
                page = await self._sign_in_at_idp(url)
                trip.hops.append(Hop("POST", url, page))
            if page.status not in (301, 302, 303, 307, 308):
                return trip
            url = urllib.parse.urljoin(url, page.location)
        raise AssertionError(f"more than {MAX_HOPS} redirects: {[h.url for h in trip.hops]}")

    def _is_idp_login_form(self, url: str, page: Page) -> bool:
        return (
            url.startswith(self.idp.authorize_url + "?")
            and page.status == 200
            and 'name="sub"' in page.text
        )

    async def _sign_in_at_idp(self, url: str) -> Page:
        """Type the subject into the IdP's form and submit it (to the same URL)."""
        async with self.browser.session.post(
            url, data={"sub": self.subject}, allow_redirects=False
        ) as response:
            return Page(response.status, response.headers, await response.text())

    async def approve(self, consent_page: Page, *, remember: bool = False) -> str:
        """Click Allow on the gate's consent page; returns where the gate sent the browser."""
        assert consent_page.is_consent_page, consent_page.text[:500]
        answer = await self.browser.answer(consent_page, "approve", remember=remember)
        assert answer.status == 303, (answer.status, answer.text[:500])
        return urllib.parse.urljoin(self.browser.gate_url, answer.location)

    async def sign_in(self, authorization_url: str, redirect_uri: str, *, remember: bool) -> SignIn:
        """What a person does after their application opened ``authorization_url``:
        allow the application if the gate asks, sign in at the IdP, come back."""
        trip = await self.browse(authorization_url, stop_before=(redirect_uri,))
        consent_page = None
        if trip.last.is_consent_page:
            consent_page = trip.last
            idp_url = await self.approve(consent_page, remember=remember)
            rest = await self.browse(idp_url, site="cross-site", stop_before=(redirect_uri,))
            trip = Trip([*trip.hops, *rest.hops], rest.stopped_before)
        sign_in = SignIn(trip, consent_page)
        self.sign_ins.append(sign_in)
        return sign_in


class BrowserStep:
    """The two browser callbacks an MCP client's OAuth hands to the application, done by
    a :class:`Person`: "open this URL" (the person signs in; the code is read from the
    redirect URI the browser stops before) and "wait for the callback" (that code)."""

    def __init__(self, person: Person, *, remember: bool) -> None:
        self.person = person
        self.remember = remember
        self._result: AuthorizationCodeResult | None = None

    async def redirect(self, authorization_url: str, redirect_uri: str) -> None:
        sign_in = await self.person.sign_in(authorization_url, redirect_uri, remember=self.remember)
        result = sign_in.result
        assert "code" in result, f"the sign-in did not end with a code: {sign_in.trip}"
        # RFC 9207: FastMCP advertises iss in authorization responses, and the SDK
        # refuses a response without it.
        self._result = AuthorizationCodeResult(
            code=result["code"], state=result.get("state"), iss=result.get("iss")
        )

    async def callback(self) -> AuthorizationCodeResult:
        result, self._result = self._result, None
        assert result is not None, "callback_handler called before redirect_handler"
        return result


class BrowserOAuth(OAuth):
    """FastMCP's client OAuth whose browser step is done by a :class:`Person`.

    ``OAuth`` hands its bound ``redirect_handler`` and ``callback_handler`` to the
    MCP SDK, so overriding them replaces "open a browser" and "run a callback
    server on the redirect port" (that port is never bound here: the person's
    browser stops before fetching the redirect URI and reads the code from it).
    """

    def __init__(self, person: Person, *, remember: bool = False, **options: Any) -> None:
        options.setdefault("callback_host", HOST)
        super().__init__(**options)
        self.person = person
        self.step = BrowserStep(person, remember=remember)

    def _bind(self, mcp_url: str) -> None:
        with warnings.catch_warnings():
            # OAuth._bind warns "Using in-memory token storage" whenever the store is
            # a MemoryStore (its default). In-memory is what these tests want, and
            # under filterwarnings=error the warning would abort the connection.
            warnings.filterwarnings(
                "ignore", message="Using in-memory token storage", category=UserWarning
            )
            super()._bind(mcp_url)

    @property
    def redirect_uri(self) -> str:
        uris = self.context.client_metadata.redirect_uris
        assert uris, "OAuth._bind sets exactly one redirect URI"
        return str(uris[0])

    async def redirect_handler(self, authorization_url: str) -> None:
        await self.step.redirect(authorization_url, self.redirect_uri)

    async def callback_handler(self) -> AuthorizationCodeResult:
        return await self.step.callback()


class MemoryTokens:
    """The MCP SDK's ``TokenStorage``, in memory: what the application keeps between
    its requests (nothing survives the object, as after a restart)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class SdkOAuth:
    """The MCP Python SDK's own ``OAuthClientProvider``, without FastMCP's wrapper, with
    the "open a browser" step done by a :class:`Person` (as :class:`BrowserOAuth`).

    With ``client_metadata_url`` the SDK names itself by that URL (Client ID Metadata
    Documents) when the server's metadata says ``client_id_metadata_document_supported``,
    and registers nothing.
    """

    def __init__(
        self,
        person: Person,
        mcp_url: str,
        *,
        redirect_port: int,
        client_metadata_url: str,
        remember: bool = False,
    ) -> None:
        self.person = person
        self.step = BrowserStep(person, remember=remember)
        self.redirect_uri = f"http://{HOST}:{redirect_port}/callback"
        self.storage = MemoryTokens()
        metadata = OAuthClientMetadata(
            client_name="E2E SDK Client",
            redirect_uris=[AnyUrl(self.redirect_uri)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        )
        self.provider = OAuthClientProvider(
            server_url=mcp_url,
            client_metadata=metadata,
            storage=self.storage,
            redirect_handler=self._redirect_handler,
            callback_handler=self._callback_handler,
            client_metadata_url=client_metadata_url,
        )

    async def _redirect_handler(self, authorization_url: str) -> None:
        await self.step.redirect(authorization_url, self.redirect_uri)

    async def _callback_handler(self) -> AuthorizationCodeResult:
        return await self.step.callback()


# --- the attacker ----------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass
class Attacker:
    """A client of the proxy whose redirect URI is a page the attacker runs on loopback.

    ``received`` holds the query of every request that page got: a ``code`` there is
    the confused deputy's result.
    """

    listener_url: str
    received: list[dict[str, str]] = field(default_factory=list)
    client_id: str = ""
    verifier: str = field(init=False)
    challenge: str = field(init=False)

    def __post_init__(self) -> None:
        self.verifier, self.challenge = pkce_pair()

    async def register(self, base_url: str, redirect_uri: str | None = None) -> str:
        """Dynamic client registration at ``base_url`` (the gate, or the bare proxy)."""
        body = {
            "client_name": "Totally Legit MCP Client",
            "redirect_uris": [redirect_uri or self.listener_url],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{base_url}/register", json=body) as response,
        ):
            assert response.status == 201, await response.text()
            document = await response.json()
        self.client_id = document["client_id"]
        return self.client_id

    def link(self, base_url: str, *, redirect_uri: str | None = None) -> str:
        """The authorization link the attacker gets the victim to open."""
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri or self.listener_url,
            "state": "attacker-" + secrets.token_urlsafe(8),
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
            "scope": SCOPE,
            "resource": f"{base_url}/mcp",  # FastMCP checks it against base_url + /mcp
        }
        return f"{base_url}/authorize?{urllib.parse.urlencode(query)}"

    async def redeem(self, base_url: str, code: str) -> str:
        """Exchange a stolen code (with the attacker's own PKCE verifier) for a token."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.listener_url,
            "client_id": self.client_id,
            "code_verifier": self.verifier,
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{base_url}/token", data=form) as response,
        ):
            assert response.status == 200, await response.text()
            document = await response.json()
        token: str = document["access_token"]
        return token


async def whoami(mcp_url: str, access_token: str) -> str | None:
    """Call the ``whoami`` tool with a bearer token; the IdP subject it acts for."""
    async with Client(mcp_url, auth=BearerAuth(access_token)) as client:
        result = await client.call_tool("whoami", {})
    subject: str | None = result.data["subject"]
    return subject


@contextlib.asynccontextmanager
async def attacker_listening() -> AsyncIterator[Attacker]:
    """Run the attacker's redirect page on loopback for the duration of a test."""
    sock = bound_socket(HOST)
    attacker = Attacker(f"http://{HOST}:{sock.getsockname()[1]}/cb")

    async def landing(request: web.Request) -> web.Response:
        attacker.received.append(dict(request.query))
        return web.Response(text="All done, you can close this tab.")

    app = web.Application()
    app.router.add_get("/cb", landing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield attacker
    finally:
        await runner.cleanup()
