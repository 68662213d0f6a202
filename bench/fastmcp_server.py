"""FastMCP's OAuthProxy for the consent comparison of bench/fastmcp_bench.py.

``python -m bench.fastmcp_server --port N --public-url URL --consent external|remember
--idp URL``: FastMCP (the ``e2e`` extra) with an OAuthProxy in front of the IdP at
``--idp``, served by uvicorn on 127.0.0.1, access log off, until SIGTERM.

* ``--consent external``: FastMCP's consent page and its browser binding are off
  (``require_authorization_consent="external"``); the gate in front does both, and
  ``--public-url`` is the gate's URL;
* ``--consent remember``: FastMCP's own consent, which approves silently a client
  the browser approved before (its signed ``MCP_APPROVED_CLIENTS`` cookie), through
  its ``/consent`` hop.

The remembered sign-in measured ends at the redirect to the IdP, so the IdP is only
named (its authorization URL is where the hand-off points); nothing calls it, and
no token is ever checked (the verifier refuses every token). Storage is in memory,
as in the end-to-end tests (tests/e2e/stack.py).
"""

from __future__ import annotations

import argparse
import secrets
from typing import Any, Literal

import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth import AccessToken, TokenVerifier
from fastmcp.server.auth.oauth_proxy import OAuthProxy
from key_value.aio.stores.memory import MemoryStore

#: The IdP scope FastMCP asks for (as in tests/e2e).
SCOPE = "openid"


class NoTokens(TokenVerifier):
    """No token is presented in this benchmark: refuse any."""

    async def verify_token(self, token: str) -> AccessToken | None:
        return None


def build(public_url: str, consent: Literal["external", "remember"], idp: str) -> FastMCP[Any]:
    auth = OAuthProxy(
        upstream_authorization_endpoint=f"{idp}/oauth2/authorize",
        upstream_token_endpoint=f"{idp}/oauth2/token",
        upstream_client_id="bench-upstream-client",
        upstream_client_secret=secrets.token_urlsafe(24),
        token_verifier=NoTokens(required_scopes=[SCOPE]),
        base_url=public_url,
        require_authorization_consent=consent,
        client_storage=MemoryStore(),
        jwt_signing_key=secrets.token_bytes(32),
    )
    mcp: FastMCP[Any] = FastMCP("consentgate-bench", auth=auth)

    @mcp.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return mcp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--public-url", required=True)
    parser.add_argument("--consent", choices=("external", "remember"), required=True)
    parser.add_argument("--idp", default="https://idp.example")
    args = parser.parse_args()
    app = build(args.public_url.rstrip("/"), args.consent, args.idp).http_app(path="/mcp")
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        ws="none",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
