"""The key ring: Ed25519 signatures, RFC 7638 key ids, RFC 8037 JWKs and HKDF purpose keys."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from consentgate.core.signed.keyring import (
    KeyRing,
    SigningUnavailable,
    derive_key,
    jwk_text,
    key_id,
    public_jwk,
    public_key_from_jwk_text,
    public_keys_from_jwks,
)


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_key_id_is_the_start_of_the_rfc7638_thumbprint_from_rfc8037() -> None:
    # RFC 8037 Appendix A.2/A.3: this public key's JWK thumbprint is
    # kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k.
    public = Ed25519PublicKey.from_public_bytes(
        b64url_decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
    )
    assert key_id(public) == "kPrK_qmxVWaYVA9w"


def test_a_signature_verifies_only_with_its_key_and_data() -> None:
    ring = KeyRing.generate()
    kid, signature = ring.sign(b"data")
    assert kid == ring.active_kid
    assert ring.verify(kid, b"data", signature)
    assert not ring.verify(kid, b"date", signature)
    assert not ring.verify("AAAAAAAAAAAAAAAA", b"data", signature)
    assert not ring.verify(kid, b"data", signature[:-1])
    assert not ring.verify(kid, b"data", b"")
    assert not ring.verify(kid, b"data", bytes(64))


def test_a_rotated_ring_signs_with_a_new_key_and_still_verifies_the_old_one() -> None:
    old = KeyRing.generate()
    kid, signature = old.sign(b"data")
    new = old.rotated()
    assert new.active_kid != old.active_kid
    assert new.kids == (new.active_kid, old.active_kid)
    assert new.verify(kid, b"data", signature)
    assert new.sign(b"data")[0] == new.active_kid


def test_a_ring_that_learns_a_key_verifies_it_and_keeps_signing_with_its_own() -> None:
    ring = KeyRing.generate()
    other = KeyRing.generate()
    kid, signature = other.sign(b"data")
    public = other.public_key(kid)
    assert public is not None
    learned = ring.with_verifying([public])
    assert learned.active_kid == ring.active_kid
    assert learned.verify(kid, b"data", signature)
    assert not ring.verify(kid, b"data", signature)
    assert KeyRing.verifying([]).with_verifying([public]).kids == (kid,)


def test_a_ring_without_a_retired_key_no_longer_verifies_its_signatures() -> None:
    old = KeyRing.generate()
    kid, signature = old.sign(b"data")
    ring = old.rotated().without(kid)
    assert not ring.has_key(kid)
    assert not ring.verify(kid, b"data", signature)


def test_the_active_key_cannot_be_removed_from_a_ring() -> None:
    ring = KeyRing.generate()
    with pytest.raises(ValueError, match="rotate first"):
        ring.without(ring.active_kid)


def test_the_jwks_holds_rfc8037_okp_keys_that_verify_the_signatures() -> None:
    ring = KeyRing.generate().rotated()
    jwks = ring.jwks()
    assert [jwk["kid"] for jwk in jwks["keys"]] == list(ring.kids)
    for jwk in jwks["keys"]:
        assert jwk["kty"] == "OKP"
        assert jwk["crv"] == "Ed25519"
        assert jwk["alg"] == "EdDSA"
        assert "d" not in jwk  # never the private part
    kid, signature = ring.sign(b"data")
    keys = public_keys_from_jwks(jwks)
    keys[kid].verify(signature, b"data")  # raises if it does not verify


def test_a_jwk_whose_kid_does_not_match_its_key_is_ignored() -> None:
    jwks = KeyRing.generate().jwks()
    jwks["keys"][0]["kid"] = "mislabelled00000"
    assert public_keys_from_jwks(jwks) == {}


def test_derived_keys_are_rfc5869_hkdf_sha256_with_the_purpose_label() -> None:
    secret = bytes(range(32))
    expected = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"consentgate/csrf"
    ).derive(secret)
    assert derive_key(secret, "csrf") == expected


def test_each_purpose_gets_a_different_key() -> None:
    secret = os.urandom(32)
    purposes = ["browser-id", "subject", "csrf", "binding", "pending"]
    keys = {derive_key(secret, purpose) for purpose in purposes}
    assert len(keys) == len(purposes)
    assert all(len(key) == 32 for key in keys)
    assert derive_key(secret, "csrf") == derive_key(secret, "csrf")


@pytest.mark.parametrize(
    ("secret", "purpose"), [(b"short", "csrf"), (bytes(32), ""), (bytes(32), "a b")]
)
def test_a_short_secret_or_a_bad_purpose_label_is_refused(secret: bytes, purpose: str) -> None:
    with pytest.raises(ValueError, match=r"secret|purpose"):
        derive_key(secret, purpose)


def test_a_verifying_ring_verifies_what_its_keys_signed_and_refuses_to_sign() -> None:
    signer = KeyRing.generate().rotated()
    kid, signature = signer.sign(b"data")
    public = [key for k in signer.kids if (key := signer.public_key(k)) is not None]
    ring = KeyRing.verifying(public)
    assert ring.verify(kid, b"data", signature)
    assert not ring.verify(kid, b"other", signature)
    assert not ring.can_sign and signer.can_sign
    assert ring.kids == tuple(sorted(signer.kids))
    assert ring.jwks() == {"keys": [public_jwk(key) for key in sorted(public, key=key_id)]}
    assert "active=None" in repr(ring)
    for attempt in (lambda: ring.sign(b"x"), lambda: ring.active_kid, ring.rotated):
        with pytest.raises(SigningUnavailable, match="only verify"):
            attempt()
    assert ring.without(kid).kids == tuple(k for k in ring.kids if k != kid)


def test_a_stored_public_key_must_hash_to_its_name() -> None:
    ring = KeyRing.generate()
    key = ring.public_key(ring.active_kid)
    assert key is not None
    text = jwk_text(key)
    loaded = public_key_from_jwk_text(text, ring.active_kid)
    assert loaded is not None and key_id(loaded) == ring.active_kid
    other = KeyRing.generate().active_kid
    assert public_key_from_jwk_text(text, other) is None  # a name lent to another key
    for bad in ("", "not json", "[]", '{"kty": "RSA"}', '{"kty":"OKP","crv":"Ed25519","x":"!"}'):
        assert public_key_from_jwk_text(bad, ring.active_kid) is None
