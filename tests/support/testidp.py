"""A small OpenID provider for the gate's own sign-in ([identity]), run by the tests on
127.0.0.1: real metadata, a real key set, real RS256-signed ID tokens, a token
endpoint that checks the code, the client's secret and the PKCE verifier.

It signs in whoever ``user`` names, without a page (the e2e stack's
oidc-provider-mock has the page). Its faults are switches a test turns on: an error
answer, a wrong ``iss`` on the answer, claims changed in the token, a token signed by
another key, no ``kid``, being down.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

CLIENT_ID = "consentgate-test"
CLIENT_SECRET = "test-client-secret"
ALICE = {"sub": "alice-0001", "email": "alice@example.com"}
BOB = {"sub": "bob-0002", "email": "bob@example.com"}


@dataclass
class _Grant:
    claims: dict[str, Any]
    nonce: str
    challenge: str
    redirect_uri: str


@dataclass
class TestIdp:
    """The provider's state and switches; ``app()`` serves it, ``url`` is set once started."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    url: str = ""
    user: dict[str, Any] = field(default_factory=lambda: dict(ALICE))
    key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "idp-1"})
    )
    #: Switches.
    down: bool = False
    error: str | None = None
    answer_iss: str | None = None
    advertise_iss: bool = False
    send_kid: bool = True
    claim_changes: dict[str, Any] = field(default_factory=dict)
    forge_with: RSAKey | None = None
    #: Answer with a page whose "Continue" link (``#continue``) goes back, as a person
    #: signing in at a real provider does: the return is then started by the
    #: provider's page (a browser labels it cross-site), not a redirect.
    continue_page: bool = False
    #: What it saw.
    authorizations: list[dict[str, str]] = field(default_factory=list)
    token_requests: int = 0
    _grants: dict[str, _Grant] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._outage])
        app.router.add_get("/.well-known/openid-configuration", self._metadata)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        return app

    @web.middleware
    async def _outage(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.down:
            return web.Response(status=503, text="down")
        response: web.StreamResponse = await handler(request)
        return response

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "authorization_response_iss_parameter_supported": self.advertise_iss,
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(dict(KeySet([self.key]).as_dict(private=False)))

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorizations.append(query)
        back: dict[str, str] = {"state": query.get("state", "")}
        if self.error:
            back["error"] = self.error
        else:
            code = secrets.token_urlsafe(16)
            self._grants[code] = _Grant(
                dict(self.user),
                query.get("nonce", ""),
                query.get("code_challenge", ""),
                query.get("redirect_uri", ""),
            )
            back["code"] = code
        iss = (
            self.answer_iss
            if self.answer_iss is not None
            else (self.url if self.advertise_iss else None)
        )
        if iss is not None:
            back["iss"] = iss
        location = f"{query['redirect_uri']}?{urllib.parse.urlencode(back)}"
        if self.continue_page:
            link = location.replace("&", "&amp;").replace('"', "&quot;")
            page = f'<!doctype html><a id="continue" href="{link}">Continue</a>'
            return web.Response(text=page, content_type="text/html")
        return web.Response(status=302, headers={"Location": location})

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self._grants.pop(str(form.get("code", "")), None)
        if grant is None or form.get("redirect_uri") != grant.redirect_uri:
            return web.json_response({"error": "invalid_grant"}, status=400)
        verifier = str(form.get("code_verifier", ""))
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if challenge != grant.challenge:
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            **grant.claims,
            **self.claim_changes,
        }
        header: dict[str, Any] = {"alg": "RS256"}
        if self.send_kid:
            header["kid"] = self.key.kid
        token = jwt.encode(header, claims, self.forge_with or self.key)
        return web.json_response({"access_token": "at", "token_type": "Bearer", "id_token": token})


def identity_section(idp: TestIdp, **changes: Any) -> dict[str, Any]:
    """The gate's ``[identity]`` for this provider."""
    return {
        "issuer": idp.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **changes,
    }
