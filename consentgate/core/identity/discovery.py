"""What an OpenID provider's metadata must say before the gate signs anyone in there.

OpenID Connect Discovery 1.0 §4.3 and RFC 8414 §3.3: the ``issuer`` in the document
MUST be identical to the issuer the configuration names (compared byte for byte), or
the document is not used: an attacker's metadata for another issuer must never be
taken for this one (the mix-up attack, RFC 9700 §4.4). The endpoints the gate uses
must be https URLs (plain http only beside a loopback issuer, for tests and demos),
the provider must offer the code flow, and PKCE's S256 when it lists its methods
(RFC 7636 §4.2; RFC 9700 §2.1.1). ``authorization_response_iss_parameter_supported``
(RFC 9207 §3) decides whether the callback must carry ``iss``.

Pure module: parses bytes already fetched.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Final

from consentgate.core.oauth.authorization_requests import is_loopback

#: Largest metadata or key set document read (bytes); real ones are a few KiB.
MAX_DOCUMENT_BYTES: Final = 256 * 1024


class DiscoveryError(ValueError):
    """The provider's metadata cannot be used; the message names the member and value."""


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The members of the provider's metadata the gate's sign-in uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    #: RFC 9207 §3: the authorization response always carries ``iss``.
    iss_parameter_supported: bool
    #: ``id_token_signing_alg_values_supported`` (OIDC Discovery §3), as listed.
    signing_algorithms: tuple[str, ...]


def _endpoint(document: dict[str, Any], name: str, *, loopback_issuer: bool) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise DiscoveryError(f"{name}: required, got {value!r}")
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        raise DiscoveryError(f"{name}: not a URL: {value!r}") from None
    plain_allowed = loopback_issuer and is_loopback(parts.hostname or "")
    if parts.scheme != "https" and not (parts.scheme == "http" and plain_allowed):
        raise DiscoveryError(f"{name}: must be an https URL, got {value!r}")
    if not parts.hostname or parts.fragment:
        raise DiscoveryError(f"{name}: not an absolute URL without fragment: {value!r}")
    return value


def parse_metadata(body: bytes, expected_issuer: str) -> ProviderMetadata:
    """The provider metadata in ``body`` for ``expected_issuer``, or :class:`DiscoveryError`."""
    if len(body) > MAX_DOCUMENT_BYTES:
        raise DiscoveryError(f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise DiscoveryError("the document is not JSON") from None
    if not isinstance(document, dict):
        raise DiscoveryError("the document is not a JSON object")
    issuer = document.get("issuer")
    if issuer != expected_issuer:
        raise DiscoveryError(
            f"issuer: {issuer!r} is not the configured identity.issuer {expected_issuer!r} "
            "(OpenID Connect Discovery §4.3: they must be identical)"
        )
    loopback = is_loopback(urllib.parse.urlsplit(expected_issuer).hostname or "")
    endpoints = {
        name: _endpoint(document, name, loopback_issuer=loopback)
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
    }
    response_types = document.get("response_types_supported")
    if isinstance(response_types, list) and "code" not in response_types:
        raise DiscoveryError(f"response_types_supported: {response_types!r} lacks code")
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise DiscoveryError(
            f"code_challenge_methods_supported: {methods!r} lacks S256 (RFC 7636 §4.2)"
        )
    iss_supported = document.get("authorization_response_iss_parameter_supported", False)
    if not isinstance(iss_supported, bool):
        raise DiscoveryError(
            f"authorization_response_iss_parameter_supported: not a boolean: {iss_supported!r}"
        )
    algorithms = document.get("id_token_signing_alg_values_supported", [])
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise DiscoveryError(
            f"id_token_signing_alg_values_supported: not a list of strings: {algorithms!r}"
        )
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        jwks_uri=endpoints["jwks_uri"],
        iss_parameter_supported=iss_supported,
        signing_algorithms=tuple(algorithms),
    )


def metadata_url(issuer: str) -> str:
    """Where the issuer's metadata is (OpenID Connect Discovery §4.1: the issuer, any
    trailing slash removed, then ``/.well-known/openid-configuration``)."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"
