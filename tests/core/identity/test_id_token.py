"""The ID token's checks, with keys the tests make (OpenID Connect Core §3.1.3.7)."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from consentgate.core.identity.id_token import Expected, verify_id_token
from consentgate.core.identity.token_errors import IdTokenRejected

ISSUER = "https://idp.example"
CLIENT = "gate-client"
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1"})


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "alice-sub",
        "email": "alice@example.com",
        "exp": int(NOW) + 300,
        "iat": int(NOW) - 5,
        "nonce": "n-123",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    key: RSAKey | ECKey, payload: dict[str, Any], *, kid: str | None = "k1", alg: str = "RS256"
) -> str:
    header: dict[str, Any] = {"alg": alg}
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(header, payload, key, algorithms=[alg])


def public(*keys: RSAKey | ECKey) -> dict[str, Any]:
    return dict(KeySet(list(keys)).as_dict(private=False))


EXPECTED = Expected(issuer=ISSUER, client_id=CLIENT, nonce="n-123")


def reason(token: str, keys: dict[str, Any], expected: Expected = EXPECTED) -> str:
    with pytest.raises(IdTokenRejected) as caught:
        verify_id_token(token, keys, expected, NOW)
    return caught.value.reason


def test_a_token_signed_by_the_providers_key_with_the_expected_claims_is_believed(
    rsa: RSAKey,
) -> None:
    verified = verify_id_token(sign(rsa, claims()), public(rsa), EXPECTED, NOW)
    assert verified["sub"] == "alice-sub"


def test_a_token_signed_by_another_key_with_the_same_kid_is_refused(rsa: RSAKey) -> None:
    forger = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    assert reason(sign(forger, claims()), public(rsa)) == "signature"


def test_a_token_whose_payload_was_edited_after_signing_is_refused(rsa: RSAKey) -> None:
    header, _payload, signature = sign(rsa, claims()).split(".")
    _h, other, _s = sign(rsa, claims(sub="mallory")).split(".")
    assert reason(f"{header}.{other}x.{signature}", public(rsa)) in ("signature", "malformed")
    assert reason(f"{header}.{other}.{signature}", public(rsa)) == "signature"


def test_an_unsigned_token_is_refused(rsa: RSAKey) -> None:
    import base64
    import json

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    token = f"{part({'alg': 'none'})}.{part(claims())}."
    assert reason(token, public(rsa)) == "algorithm"


def test_another_issuer_is_refused(rsa: RSAKey) -> None:
    assert reason(sign(rsa, claims(iss="https://idp.example/")), public(rsa)) == "issuer"


def test_another_audience_is_refused(rsa: RSAKey) -> None:
    assert reason(sign(rsa, claims(aud="someone-else")), public(rsa)) == "audience"


def test_several_audiences_need_the_gate_as_authorized_party(rsa: RSAKey) -> None:
    keys = public(rsa)
    assert reason(sign(rsa, claims(aud=[CLIENT, "other"])), keys) == "authorized_party"
    token = sign(rsa, claims(aud=[CLIENT, "other"], azp=CLIENT))
    assert verify_id_token(token, keys, EXPECTED, NOW)["azp"] == CLIENT


def test_an_expired_token_is_refused_beyond_the_leeway(rsa: RSAKey) -> None:
    assert reason(sign(rsa, claims(exp=int(NOW) - 61)), public(rsa)) == "expired"
    assert verify_id_token(sign(rsa, claims(exp=int(NOW) - 30)), public(rsa), EXPECTED, NOW)


def test_a_token_issued_in_the_future_is_refused(rsa: RSAKey) -> None:
    assert reason(sign(rsa, claims(iat=int(NOW) + 600)), public(rsa)) == "issued_in_future"


def test_another_nonce_is_refused(rsa: RSAKey) -> None:
    assert reason(sign(rsa, claims(nonce="n-other")), public(rsa)) == "nonce"
    assert reason(sign(rsa, claims(nonce=None)), public(rsa)) == "nonce"


def test_a_token_without_kid_is_verified_with_the_only_key(rsa: RSAKey) -> None:
    verified = verify_id_token(sign(rsa, claims(), kid=None), public(rsa), EXPECTED, NOW)
    assert verified["sub"] == "alice-sub"


def test_a_token_without_kid_is_refused_when_the_key_set_has_several_keys(rsa: RSAKey) -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    assert reason(sign(rsa, claims(), kid=None), public(rsa, other)) == "no_key"


def test_a_kid_the_key_set_does_not_hold_is_told_apart_for_a_refresh(rsa: RSAKey) -> None:
    assert reason(sign(rsa, claims(), kid="k9"), public(rsa)) == "unknown_kid"


def test_the_key_is_chosen_by_kid_among_several(rsa: RSAKey) -> None:
    other = ECKey.generate_key("P-256", parameters={"kid": "k2"})
    token = sign(other, claims(), kid="k2", alg="ES256")
    assert verify_id_token(token, public(rsa, other), EXPECTED, NOW)["sub"] == "alice-sub"


def test_an_algorithm_the_provider_does_not_list_is_refused(rsa: RSAKey) -> None:
    expected = Expected(
        issuer=ISSUER, client_id=CLIENT, nonce="n-123", provider_algorithms=["ES256"]
    )
    assert reason(sign(rsa, claims()), public(rsa), expected) == "algorithm"


def test_an_hmac_token_keyed_with_a_public_value_is_refused(rsa: RSAKey) -> None:
    from joserfc.jwk import OctKey

    secret = OctKey.import_key("a-client-secret-that-is-long-enough-for-hs256")
    token = jwt.encode({"alg": "HS256", "kid": "k1"}, claims(), secret)
    assert reason(token, public(rsa)) == "algorithm"
