"""One sign-in at the provider: state, nonce and PKCE, and what waits for its return.

* ``state`` (RFC 6749 §10.12) ties the provider's answer to the transaction the gate
  keeps server-side, bound to the browser that started it; it is a random value
  (32 bytes), and the store's key for the waiting transaction is a digest of it, so
  the database holds nothing a callback could be forged from.
* ``nonce`` (OpenID Connect Core §3.1.2.1) must come back inside the ID token.
* PKCE with S256 (RFC 7636 §4; RFC 9700 §2.1.1 asks for it of every client, public
  or confidential).
* The waiting authorization request, and how it arrived (its ``Sec-Fetch-Site``), stay
  in the store; only ``state``, ``nonce`` and the code challenge travel through the
  provider, so nothing of the original request round-trips (docs/references.md,
  Cloudflare's lesson: keep the pending request server-side).
* The callback's ``iss`` (RFC 9207 §2.4): required when the provider's metadata says
  it sends one, and compared exactly whenever present (the mix-up attack).

Pure module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from consentgate.core.identity.discovery import ProviderMetadata

#: The pending-record ``source`` of a waiting sign-in (pending rows of consent pages,
#: from older versions, have a network there).
SIGNIN_SOURCE: Final = "signin"
#: Version of the waiting transaction's JSON.
FORMAT: Final = 1
_MAX_STATE_LENGTH: Final = 128

Refusal = Literal["no_state", "provider_error", "issuer", "no_code"]


class CallbackRefused(ValueError):
    """The provider's answer cannot be used; ``reason`` is one of :data:`Refusal`."""

    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Refusal = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class SignInStart:
    """The secrets of one sign-in: sent (state, nonce, the challenge) or kept (verifier)."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> SignInStart:
        return cls(
            _b64(secrets.token_bytes(32)),
            _b64(secrets.token_bytes(32)),
            _b64(secrets.token_bytes(48)),
        )

    @property
    def challenge(self) -> str:
        """RFC 7636 §4.2: ``BASE64URL(SHA256(ASCII(code_verifier)))``."""
        return _b64(hashlib.sha256(self.verifier.encode("ascii")).digest())


def state_key(state: str) -> str:
    """The store's id of the transaction waiting for ``state``: a digest, never the state."""
    return "signin:" + _b64(hashlib.sha256(b"consentgate-signin\n" + state.encode()).digest())


@dataclass(frozen=True, slots=True)
class Waiting:
    """What waits in the store for the provider's answer."""

    #: The authorization request's validated parameters, canonically encoded.
    query: str
    #: ``Sec-Fetch-Site`` of the request when it first arrived (None: absent).
    fetch_site: str | None
    nonce: str
    verifier: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": FORMAT,
                "q": self.query,
                "s": self.fetch_site,
                "n": self.nonce,
                "c": self.verifier,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Waiting:
        try:
            value = json.loads(text)
        except ValueError:
            raise ValueError("not JSON") from None
        if not isinstance(value, dict) or value.get("v") != FORMAT:
            raise ValueError("not a waiting sign-in")
        query, site, nonce, verifier = (
            value.get("q"),
            value.get("s"),
            value.get("n"),
            value.get("c"),
        )
        if not (
            isinstance(query, str)
            and (site is None or isinstance(site, str))
            and isinstance(nonce, str)
            and isinstance(verifier, str)
        ):
            raise ValueError("malformed waiting sign-in")
        return cls(query, site, nonce, verifier)


def authorization_url(
    metadata: ProviderMetadata,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    start: SignInStart,
    prompt: str | None = None,
) -> str:
    """The provider's authorization request for this sign-in (OIDC Core §3.1.2.1);
    ``prompt="login"`` asks the provider to authenticate the person again."""
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": start.state,
            "nonce": start.nonce,
            "code_challenge": start.challenge,
            "code_challenge_method": "S256",
            **({"prompt": prompt} if prompt else {}),
        },
        quote_via=urllib.parse.quote,
    )
    endpoint = metadata.authorization_endpoint
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def callback_state(parameters: Mapping[str, str]) -> str:
    """The callback's ``state``, or :class:`CallbackRefused` (``no_state``)."""
    state = parameters.get("state", "")
    if not state or len(state) > _MAX_STATE_LENGTH:
        raise CallbackRefused("no_state", "the answer carries no usable state")
    return state


def callback_code(parameters: Mapping[str, str], metadata: ProviderMetadata) -> str:
    """The authorization code of the provider's answer, once its ``iss`` is checked
    (RFC 9207 §2.4, before anything else, errors included); else :class:`CallbackRefused`."""
    iss = parameters.get("iss")
    if iss is None and metadata.iss_parameter_supported:
        raise CallbackRefused("issuer", "the provider sends iss and this answer has none")
    if iss is not None and iss != metadata.issuer:
        raise CallbackRefused("issuer", f"iss {iss!r} is not {metadata.issuer!r}")
    if "error" in parameters:
        raise CallbackRefused("provider_error", parameters["error"][:64])
    code = parameters.get("code", "")
    if not code:
        raise CallbackRefused("no_code", "the answer carries no code")
    return code
