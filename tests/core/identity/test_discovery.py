"""The provider's metadata is used only for the configured issuer (OIDC Discovery §4.3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consentgate.core.identity.discovery import DiscoveryError, metadata_url, parse_metadata

ISSUER = "https://idp.example/realm"


def document(**changes: Any) -> bytes:
    base: dict[str, Any] = {
        "issuer": ISSUER,
        "authorization_endpoint": "https://idp.example/auth",
        "token_endpoint": "https://idp.example/token",
        "jwks_uri": "https://idp.example/jwks",
        "response_types_supported": ["code"],
    }
    base.update(changes)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_the_metadata_of_the_configured_issuer_is_read() -> None:
    metadata = parse_metadata(document(), ISSUER)
    assert metadata.token_endpoint == "https://idp.example/token"
    assert metadata.iss_parameter_supported is False


@pytest.mark.parametrize(
    "issuer", ["https://idp.example/realm/", "https://IDP.example/realm", "https://evil.example"]
)
def test_metadata_naming_another_issuer_even_by_a_trailing_slash_is_refused(issuer: str) -> None:
    with pytest.raises(DiscoveryError, match="issuer"):
        parse_metadata(document(issuer=issuer), ISSUER)


def test_a_plain_http_endpoint_is_refused_beside_an_https_issuer() -> None:
    with pytest.raises(DiscoveryError, match="token_endpoint"):
        parse_metadata(document(token_endpoint="http://idp.example/token"), ISSUER)


def test_plain_http_is_accepted_for_a_loopback_issuer_only() -> None:
    local = "http://127.0.0.1:9000"
    metadata = parse_metadata(
        document(
            issuer=local,
            authorization_endpoint=f"{local}/auth",
            token_endpoint=f"{local}/token",
            jwks_uri=f"{local}/jwks",
        ),
        local,
    )
    assert metadata.jwks_uri == f"{local}/jwks"


def test_a_provider_without_s256_is_refused() -> None:
    with pytest.raises(DiscoveryError, match="S256"):
        parse_metadata(document(code_challenge_methods_supported=["plain"]), ISSUER)


def test_a_missing_endpoint_is_named() -> None:
    with pytest.raises(DiscoveryError, match="jwks_uri"):
        parse_metadata(document(jwks_uri=None), ISSUER)


def test_the_rfc_9207_flag_is_read() -> None:
    flagged = document(authorization_response_iss_parameter_supported=True)
    assert parse_metadata(flagged, ISSUER).iss_parameter_supported is True


def test_the_metadata_url_is_under_the_issuers_path() -> None:
    assert metadata_url(ISSUER) == "https://idp.example/realm/.well-known/openid-configuration"
    assert (
        metadata_url("https://idp.example/")
        == "https://idp.example/.well-known/openid-configuration"
    )
