"""The key ring of consent records: Ed25519 signing and verifying, key ids, JWKs, and
the per-purpose keys derived from the cookie secret.

Why a key ring and not one key: FastMCP's cookie-only consent signed with a key
that could never change (the upstream client secret), so a leaked key could not
be retired without forgetting every approval (docs/references.md, "Weaknesses none of
the cookie-only designs solve: ... no key rotation"). Here one *active* Ed25519
key signs new records, and any number of *retired* keys keep verifying the
records they signed until an operator deletes them; a deleted key makes its
records absent, which is how a compromised key is revoked wholesale.

Why Ed25519 (RFC 8032) and not an HMAC: the public half can be exported as a
JWKS (RFC 8037 OKP keys, RFC 7517) so anyone can verify an exported consent log
offline without being able to forge one.

The key id is derived from the public key, never chosen: the first 16 characters
(96 bits) of its RFC 7638 JWK thumbprint, base64url. A verifier can recompute it
from the JWKS entry.

The cookie secret is separate from the signing keys, and each use gets its own
key derived with HKDF (RFC 5869) under a distinct label, so a MAC computed for
one purpose (a CSRF token) can never be replayed as another (a browser id).
STYLE.md: "Purpose-separated keys (one HKDF label per use)".

Pure: keys in memory only. Reading and writing the key directory is
:mod:`consentgate.signing.key_directory`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

COOKIE_SECRET_BYTES: Final = 32
#: Length of a key id: 16 base64url characters = 96 bits of the JWK thumbprint.
KID_LENGTH: Final = 16
_KID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{16}$")
_HKDF_INFO_PREFIX: Final = b"consentgate/"
_PURPOSE_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key id: the first 16 characters of the RFC 7638 JWK thumbprint, base64url.

    RFC 7638 §3.2: the thumbprint hashes the required members of the JWK in
    lexicographic order without whitespace; for an OKP key (RFC 8037 §2) those are
    ``crv``, ``kty`` and ``x``.
    """
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(_raw_public(public_key))}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode("ascii")
    return _b64url(hashlib.sha256(canonical).digest())[:KID_LENGTH]


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """An RFC 8037 OKP JWK for an Ed25519 public key, with its kid."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(_raw_public(public_key)),
        "kid": key_id(public_key),
        "use": "sig",
        "alg": "EdDSA",
    }


def public_keys_from_jwks(jwks: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """kid -> public key for the Ed25519 keys of a JWKS (what ``consents export`` writes).

    Each key's kid is recomputed from its ``x``; a JWK whose kid does not match is
    skipped, so a verifier never trusts a label the exporter could have mistyped.
    """
    found: dict[str, Ed25519PublicKey] = {}
    for jwk in jwks.get("keys", []):
        if not isinstance(jwk, Mapping) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        x = jwk.get("x")
        if not isinstance(x, str):
            continue
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            public_key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            continue
        kid = key_id(public_key)
        if jwk.get("kid", kid) == kid:
            found[kid] = public_key
    return found


def jwk_text(public_key: Ed25519PublicKey) -> str:
    """The public JWK as compact JSON, the form a store keeps."""
    return json.dumps(public_jwk(public_key), sort_keys=True, separators=(",", ":"))


def public_key_from_jwk_text(text: str, kid: str) -> Ed25519PublicKey | None:
    """The key of a :func:`jwk_text`, or None when it is not JSON, not an Ed25519 JWK,
    or its key does not hash to ``kid`` (an edited row must not lend a name to a key)."""
    try:
        jwk = json.loads(text)
    except ValueError:
        return None
    if not isinstance(jwk, dict):
        return None
    return public_keys_from_jwks({"keys": [jwk]}).get(kid)


class SigningUnavailable(RuntimeError):
    """A verify-only key ring (:meth:`KeyRing.verifying`) was asked to sign."""


def _by_kid(keys: Iterable[Ed25519PublicKey]) -> Mapping[str, Ed25519PublicKey]:
    return MappingProxyType({key_id(key): key for key in keys})


class KeyRing:
    """One active signing key and any number of retired keys that only verify.

    Immutable: rotation builds a new ring (:meth:`rotated`, or :func:`rotate_keys`
    plus :func:`load_keyring` for the key directory) and the store swaps it in
    with ``ConsentStore.reload_keys``.
    """

    __slots__ = ("_active", "_active_kid", "_public")

    def __init__(self, active: Ed25519PrivateKey, retired: Iterable[Ed25519PublicKey] = ()) -> None:
        self._active: Ed25519PrivateKey | None = active
        self._active_kid = key_id(active.public_key())
        self._public = _by_kid([*retired, active.public_key()])

    @classmethod
    def generate(cls) -> KeyRing:
        """A ring with one fresh key, held only in memory (tests, embedded use)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def verifying(cls, public_keys: Iterable[Ed25519PublicKey]) -> KeyRing:
        """A ring that only verifies: the public keys a store keeps,
        so that ``consents verify`` and ``export`` run on a machine without the keys
        directory. :meth:`sign` and :attr:`active_kid` raise :class:`SigningUnavailable`.
        """
        ring = cls.__new__(cls)
        ring._active = None
        ring._active_kid = ""
        ring._public = _by_kid(public_keys)
        return ring

    def __repr__(self) -> str:
        active = self._active_kid if self._active is not None else None
        return f"KeyRing(active={active!r}, kids={list(self.kids)!r})"

    @property
    def can_sign(self) -> bool:
        """False for a :meth:`verifying` ring."""
        return self._active is not None

    @property
    def active_kid(self) -> str:
        """The kid that :meth:`sign` uses; it is part of what gets signed."""
        self._signing_key()
        return self._active_kid

    @property
    def kids(self) -> tuple[str, ...]:
        """Every kid the ring verifies, the active one first (when it has one), then the
        retired ones sorted."""
        retired = sorted(kid for kid in self._public if kid != self._active_kid)
        return (self._active_kid, *retired) if self._active is not None else tuple(retired)

    def _signing_key(self) -> Ed25519PrivateKey:
        if self._active is None:
            raise SigningUnavailable(
                "these keys were read from the store and only verify records; run this "
                "command where the gate's keys directory is"
            )
        return self._active

    def has_key(self, kid: str) -> bool:
        return kid in self._public

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        return self._public.get(kid)

    def sign(self, data: bytes) -> tuple[str, bytes]:
        """Sign with the active key; returns (kid, 64-byte signature)."""
        return self._active_kid, self._signing_key().sign(data)

    def verify(self, kid: str, data: bytes, signature: bytes) -> bool:
        """True only if ``kid`` is in the ring and its key signed ``data``; unknown kid -> False."""
        public_key = self._public.get(kid)
        if public_key is None:
            return False
        try:
            public_key.verify(signature, data)
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True

    def rotated(self) -> KeyRing:
        """A ring with a new active key; the current keys keep verifying."""
        self._signing_key()
        return KeyRing(Ed25519PrivateKey.generate(), self._public.values())

    def with_verifying(self, public_keys: Iterable[Ed25519PublicKey]) -> KeyRing:
        """This ring, signing with the same key, that also verifies ``public_keys``: a
        key staged for a fleet (``consentgate keys add``) is known to every gate before
        any gate signs with it (docs/deploy.md, "Rotating the keys of several instances")."""
        known = [*self._public.values(), *public_keys]
        if self._active is None:
            return KeyRing.verifying(known)
        return KeyRing(self._active, known)

    def without(self, kid: str) -> KeyRing:
        """A ring that no longer knows ``kid``: its records become absent."""
        remaining = [key for i, key in self._public.items() if i != kid]
        if self._active is None:
            return KeyRing.verifying(remaining)
        if kid == self._active_kid:
            raise ValueError("the active key cannot be removed; rotate first")
        return KeyRing(self._active, remaining)

    def jwks(self) -> dict[str, Any]:
        """The public keys as an RFC 7517 JWK Set of RFC 8037 OKP/Ed25519 keys."""
        return {"keys": [public_jwk(self._public[kid]) for kid in self.kids]}


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose: HKDF-SHA256(secret, info=b"consentgate/" + purpose).

    RFC 5869; no salt (the secret is already uniformly random or a long operator
    secret). The gate derives ``"browser-id"``, ``"subject"``, ``"csrf"``,
    ``"binding"``, ``"approvals-csrf"`` and ``"pending-seal"`` keys, so no MAC key
    serves two uses.
    """
    if len(secret) < COOKIE_SECRET_BYTES:
        raise ValueError(f"the secret must be at least {COOKIE_SECRET_BYTES} bytes")
    if not _PURPOSE_RE.match(purpose):
        raise ValueError(f"purpose must be a lower-case label such as 'csrf', got {purpose!r}")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=_HKDF_INFO_PREFIX + purpose.encode("ascii"),
    )
    return hkdf.derive(secret)


def secret_fingerprint(secret: bytes) -> str:
    """A public name for a cookie secret: 16 hex digits of HMAC-SHA256(secret, a fixed
    label). Two gates with the same secret have the same fingerprint; it reveals
    nothing of the secret (it is a MAC under it) and is safe to log and store."""
    return hmac.new(
        secret, b"consentgate/cookie-secret-fingerprint/v1", hashlib.sha256
    ).hexdigest()[:16]
