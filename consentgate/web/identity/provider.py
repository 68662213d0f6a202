"""The identity provider as the gate talks to it: metadata, keys, the token exchange.

* **Discovery** (OpenID Connect Discovery 1.0 §4): ``{issuer}/.well-known/openid-
  configuration``, used only when its ``issuer`` is identical to the configured one
  (:func:`consentgate.core.identity.discovery.parse_metadata`), kept for
  :data:`METADATA_TTL`; a failed fetch is remembered for :data:`RETRY_AFTER` seconds
  so a provider that is down is not asked again by every browser.
* **Keys** (RFC 7517): the ``jwks_uri`` document, kept until an ID token names a
  ``kid`` it lacks; then fetched again, at most once every :data:`KEY_REFRESH_INTERVAL`
  seconds (key rotation without letting forged ``kid`` values drive a fetch each).
* **The token exchange** (RFC 6749 §4.1.3, RFC 7636 §4.5): the code and the PKCE
  verifier; with a client secret as ``client_secret_basic`` (RFC 6749 §2.3.1: the id
  and the secret form-encoded before base64), else as a public client (``client_id``
  in the body).

One ``aiohttp.ClientSession`` with a ``DummyCookieJar`` (docs/references.md, Proxy
correctness), no environment proxies, no redirects followed, a deadline and a size
cap on every answer. Nothing secret (codes, tokens, the client secret) is logged.
Every failure is a :class:`ProviderUnavailable` (the provider cannot be used now: the
person gets a "try again" page) or a rejection the caller turns into a refusal page.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import urllib.parse
from typing import Any, Final

import aiohttp

from consentgate.clients.https_get import tls_context
from consentgate.config.sections_identity import IdentityConfig
from consentgate.core.clock import Clock
from consentgate.core.identity.discovery import (
    MAX_DOCUMENT_BYTES,
    DiscoveryError,
    ProviderMetadata,
    metadata_url,
    parse_metadata,
)
from consentgate.core.identity.start_budget import StartBudget
from consentgate.core.identity.token_errors import UNKNOWN_KID, IdTokenRejected

log = logging.getLogger("consentgate")

METADATA_TTL: Final = 3600.0
RETRY_AFTER: Final = 30.0
KEY_REFRESH_INTERVAL: Final = 60.0
TIMEOUT: Final = 10.0


class ProviderUnavailable(Exception):
    """The provider cannot be used now; the message is for the operator's log."""


class TokenRefused(Exception):
    """The token endpoint refused the code (an RFC 6749 §5.2 error)."""


def _basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: each part form-urlencoded, then ``id:secret`` in base64."""
    pair = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def provider_tls(config: IdentityConfig) -> ssl.SSLContext | bool:
    """The TLS context the provider is reached with: the system's roots, plus
    ``[identity] ca_file`` when set (a private IdP), as ``[clients] fetch_ca_file`` does
    for document hosts; ``ValueError`` naming ``identity.ca_file`` when it cannot be
    loaded (checked at start and by ``check-config``)."""
    if config.ca_file is None:
        return True
    return tls_context(config.ca_file, key="identity.ca_file")


class IdentityProvider:
    """Metadata, keys and the token exchange of the configured issuer."""

    def __init__(self, config: IdentityConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._tls = provider_tls(config)
        self._session: aiohttp.ClientSession | None = None
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = 0.0
        self._failed_at: float | None = None
        self._failure = ""
        self._keys: dict[str, Any] | None = None
        self._refreshed_at: float | None = None
        #: Sign-in starts per client network (each writes a waiting row).
        self.starts = StartBudget(clock)
        self._metadata_lock = asyncio.Lock()
        self._keys_lock = asyncio.Lock()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(ssl=self._tls),
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                trust_env=False,
            )
        return self._session

    async def _request(
        self,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        try:
            async with self._client().request(
                method,
                url,
                data=data,
                headers={"Accept": "application/json", **(headers or {})},
                allow_redirects=False,
            ) as response:
                body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise ProviderUnavailable(f"{_where(url)}: the answer is too large")
                return response.status, body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(f"{_where(url)}: {type(exc).__name__}") from None

    async def metadata(self) -> ProviderMetadata:
        """The issuer's metadata, fetched when not kept; :class:`ProviderUnavailable`."""
        now = self._clock()
        if self._metadata is not None and now - self._metadata_at < METADATA_TTL:
            return self._metadata
        if self._failed_at is not None and now - self._failed_at < RETRY_AFTER:
            raise ProviderUnavailable(self._failure)
        async with self._metadata_lock:
            if self._metadata is not None and self._clock() - self._metadata_at < METADATA_TTL:
                return self._metadata
            try:
                self._metadata = await self._fetch_metadata()
            except ProviderUnavailable as exc:
                self._failed_at, self._failure = self._clock(), str(exc)
                log.warning("identity provider unavailable: %s", exc)
                raise
            self._metadata_at, self._failed_at = self._clock(), None
            return self._metadata

    async def _fetch_metadata(self) -> ProviderMetadata:
        url = metadata_url(self._config.issuer)
        status, body = await self._request("GET", url)
        if status != 200:
            raise ProviderUnavailable(f"{url}: status {status}")
        try:
            return parse_metadata(body, self._config.issuer)
        except DiscoveryError as exc:
            raise ProviderUnavailable(f"{url}: {exc}") from None

    async def key_set(self, *, refresh: bool = False) -> dict[str, Any]:
        """The provider's key set; ``refresh`` fetches it again unless it was fetched
        again in the last :data:`KEY_REFRESH_INTERVAL` seconds."""
        if self._keys is not None and not refresh:
            return self._keys
        async with self._keys_lock:
            last = self._refreshed_at
            allowed = last is None or self._clock() - last >= KEY_REFRESH_INTERVAL
            if self._keys is None or (refresh and allowed):
                metadata = await self.metadata() if self._metadata is None else self._metadata
                status, body = await self._request("GET", metadata.jwks_uri)
                keys = _json_object(body) if status == 200 else None
                if keys is None or not isinstance(keys.get("keys"), list):
                    raise ProviderUnavailable(f"{metadata.jwks_uri}: no key set (status {status})")
                if self._keys is not None:
                    self._refreshed_at = self._clock()
                self._keys = keys
            return self._keys

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        """The ID token the token endpoint gives for ``code``; :class:`TokenRefused` when
        it refuses the code, :class:`ProviderUnavailable` when it cannot be used."""
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        headers: dict[str, str] = {}
        if self._config.client_secret:
            headers["Authorization"] = _basic(self._config.client_id, self._config.client_secret)
        else:
            form["client_id"] = self._config.client_id
        status, body = await self._request(
            "POST", metadata.token_endpoint, data=form, headers=headers
        )
        answer = _json_object(body)
        if 400 <= status < 500 and answer is not None and isinstance(answer.get("error"), str):
            raise TokenRefused(str(answer["error"])[:64])
        if status != 200 or answer is None:
            raise ProviderUnavailable(f"{_where(metadata.token_endpoint)}: status {status}")
        token = answer.get("id_token")
        if not isinstance(token, str) or not token:
            raise TokenRefused("no id_token in the token response")
        return token

    async def verify(self, token: str, nonce: str) -> dict[str, Any]:
        """The verified claims of ``token``; an unknown ``kid`` fetches the keys again
        once (rate-limited); else :class:`IdTokenRejected`."""
        # Imported here: joserfc is the optional "identity" extra (checked at start).
        from consentgate.core.identity.id_token import Expected, verify_id_token  # noqa: PLC0415

        metadata = await self.metadata()
        expected = Expected(
            issuer=self._config.issuer,
            client_id=self._config.client_id,
            nonce=nonce,
            provider_algorithms=metadata.signing_algorithms,
        )
        try:
            return verify_id_token(token, await self.key_set(), expected, self._clock())
        except IdTokenRejected as exc:
            if exc.reason != UNKNOWN_KID:
                raise
        keys = await self.key_set(refresh=True)
        return verify_id_token(token, keys, expected, self._clock())


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _where(url: str) -> str:
    """A URL for the log without its query (which could hold anything)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
