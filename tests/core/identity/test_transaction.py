"""State, nonce, PKCE and the provider's answer (RFC 7636, RFC 9207)."""

from __future__ import annotations

import base64
import hashlib
import urllib.parse

import pytest

from consentgate.core.identity.discovery import ProviderMetadata
from consentgate.core.identity.transaction import (
    CallbackRefused,
    SignInStart,
    Waiting,
    authorization_url,
    callback_code,
    state_key,
)

ISSUER = "https://idp.example"


def metadata(*, iss_supported: bool = False) -> ProviderMetadata:
    return ProviderMetadata(
        ISSUER, f"{ISSUER}/auth", f"{ISSUER}/token", f"{ISSUER}/jwks", iss_supported, ()
    )


def test_the_authorization_request_carries_state_nonce_and_an_s256_challenge() -> None:
    start = SignInStart.new()
    url = authorization_url(
        metadata(), client_id="gate", redirect_uri="https://gate/cb", scopes=["openid"], start=start
    )
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query["state"] == start.state and query["nonce"] == start.nonce
    digest = hashlib.sha256(start.verifier.encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert query["code_challenge_method"] == "S256"
    assert start.verifier not in url


def test_every_sign_in_has_its_own_secrets_and_the_store_key_is_not_the_state() -> None:
    first, second = SignInStart.new(), SignInStart.new()
    assert len({first.state, second.state, first.nonce, second.nonce}) == 4
    assert first.state not in state_key(first.state)


def test_an_answer_with_another_iss_is_refused_even_when_the_provider_does_not_advertise_it() -> (
    None
):
    with pytest.raises(CallbackRefused) as caught:
        callback_code({"code": "c", "iss": "https://evil.example"}, metadata())
    assert caught.value.reason == "issuer"


def test_an_answer_without_iss_is_refused_when_the_provider_advertises_it() -> None:
    with pytest.raises(CallbackRefused) as caught:
        callback_code({"code": "c"}, metadata(iss_supported=True))
    assert caught.value.reason == "issuer"
    assert callback_code({"code": "c", "iss": ISSUER}, metadata(iss_supported=True)) == "c"


def test_a_provider_error_is_refused() -> None:
    with pytest.raises(CallbackRefused) as caught:
        callback_code({"error": "access_denied"}, metadata())
    assert caught.value.reason == "provider_error"


def test_the_waiting_request_reads_back_as_written() -> None:
    waiting = Waiting("client_id=a&state=x", "cross-site", "n", "v")
    assert Waiting.from_json(waiting.to_json()) == waiting
    assert Waiting.from_json(Waiting("q", None, "n", "v").to_json()).fetch_site is None
