"""The checks an ID token passes before the gate believes who signed in.

OpenID Connect Core 1.0 §3.1.3.7, in the order applied:

* the signature verifies with the provider's key (RFC 7515) chosen by the header's
  ``kid`` when it has one; without a ``kid``, only when the key set holds exactly one
  signing key (some providers, the e2e stack's oidc-provider-mock among them, send no
  ``kid``); an unknown ``kid`` is told apart (:data:`UNKNOWN_KID`) so the caller can
  fetch the key set again once (key rotation);
* the algorithm is an asymmetric one the gate accepts and the provider lists; never
  ``none`` and never an HMAC (a client secret must not be a verification key here);
* ``iss`` is exactly the configured issuer; ``aud`` holds the gate's client_id, and
  with several audiences ``azp`` is the gate's client_id;
* ``exp`` is in the future and ``iat`` not in the future, each within a small leeway
  for clocks apart;
* ``nonce`` equals the one this sign-in sent (§3.1.2.1: the replay defence).

The library is joserfc (pyproject.toml says why). Pure module: the key set is
passed in, already fetched.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from consentgate.core.identity.token_errors import IdTokenRejected

#: Asymmetric JWS algorithms accepted for ID tokens (RFC 7518 §3.1, RFC 8037).
ACCEPTED_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: Seconds of clock difference tolerated on ``exp`` and ``iat``.
LEEWAY: Final = 60
#: Longest ID token read (characters).
MAX_TOKEN_LENGTH: Final = 16 * 1024


@dataclass(frozen=True, slots=True)
class Expected:
    """What this sign-in expects of its ID token."""

    issuer: str
    client_id: str
    nonce: str
    #: The provider's ``id_token_signing_alg_values_supported``; empty: any accepted.
    provider_algorithms: Collection[str] = ()


def _select_key(keys: KeySet, kid: object, alg: str) -> RSAKey | ECKey | OKPKey:
    signing = [
        key
        for key in keys.keys
        if isinstance(key, RSAKey | ECKey | OKPKey) and key.get("use") in (None, "sig")
    ]
    if kid is not None:
        if not isinstance(kid, str):
            raise IdTokenRejected("malformed", "kid is not a string")
        for key in signing:
            if key.kid == kid:
                return key
        raise IdTokenRejected("unknown_kid", f"no key with kid {kid!r}")
    if len(signing) != 1:
        raise IdTokenRejected(
            "no_key", f"the token names no kid and the key set has {len(signing)} signing keys"
        )
    return signing[0]


def _check_claims(claims: Mapping[str, Any], expected: Expected, now: float) -> None:
    if claims.get("iss") != expected.issuer:
        raise IdTokenRejected("issuer", f"iss {claims.get('iss')!r} is not {expected.issuer!r}")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or expected.client_id not in audiences:
        raise IdTokenRejected("audience", f"aud {audience!r} lacks the gate's client_id")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != expected.client_id:
        raise IdTokenRejected("authorized_party", f"azp {azp!r} is not the gate's client_id")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise IdTokenRejected("expired", "exp is missing or not a number")
    if exp + LEEWAY <= now:
        raise IdTokenRejected("expired", f"exp {exp} is past")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise IdTokenRejected("issued_in_future", "iat is missing or not a number")
    if iat - LEEWAY > now:
        raise IdTokenRejected("issued_in_future", f"iat {iat} is in the future")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(
        nonce.encode("utf-8", "surrogatepass"), expected.nonce.encode()
    ):
        raise IdTokenRejected("nonce", "nonce is not the one this sign-in sent")


def verify_id_token(
    token: str, key_set: Mapping[str, Any], expected: Expected, now: float
) -> dict[str, Any]:
    """The claims of ``token`` once every check passed; else :class:`IdTokenRejected`."""
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise IdTokenRejected("malformed", "not a compact JWS")
    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
        keys = KeySet.import_key_set(dict(key_set))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError):
        raise IdTokenRejected("malformed", "unreadable header or key set") from None
    alg = header.get("alg")
    allowed = ACCEPTED_ALGORITHMS & set(expected.provider_algorithms or ACCEPTED_ALGORITHMS)
    if not isinstance(alg, str) or alg not in allowed:
        raise IdTokenRejected("algorithm", f"alg {alg!r} is not accepted")
    key = _select_key(keys, header.get("kid"), alg)
    if key.get("alg") not in (None, alg):
        raise IdTokenRejected("algorithm", f"the key is for {key.get('alg')!r}, not {alg!r}")
    try:
        decoded = jwt.decode(token, key, algorithms=[alg])
    except JoseError:
        raise IdTokenRejected("signature", "the signature does not verify") from None
    claims = dict(decoded.claims)
    _check_claims(claims, expected, now)
    return claims
