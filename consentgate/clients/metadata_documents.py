"""What a fetched Client ID Metadata Document must say, and what the gate keeps of it.

Sources (docs/references.md, "Client ID Metadata Documents"):

* MCP authorization 2025-11-25, "Client ID Metadata Documents", and
  draft-ietf-oauth-client-id-metadata-document: the document is a JSON object with
  ``client_id`` equal to the URL it was fetched from (a plain string comparison,
  RFC 3986 §6.2.1), ``client_name`` and ``redirect_uris``; the server MUST check that
  equality, MUST check the authorization request's redirect_uri against the list and
  MUST validate the structure. A document is public, so it can hold no secret: a
  ``client_secret`` (or its expiry) is refused, and so is every ``client_secret_*``
  token endpoint auth method. Unknown fields are ignored (RFC 7591 §2).
* The redirect URIs pass through the gate's own rules (``core.oauth.parse_redirect_uri``)
  and are matched as for a DCR client: exactly, except that an http loopback URI may
  differ in port only (RFC 8252 §7.3; real CIMD clients list ``http://127.0.0.1/cb``
  and listen on a new port each run).
* ``client_name`` is shown on the consent page as the client's own claim: it is
  refused when empty, longer than the page shows without cutting
  (``clientinfo.MAX_NAME_LENGTH``), or when it holds control characters, line
  separators, lone surrogates or the invisible controls that reverse the direction of
  text (U+202A-U+202E, U+2066-U+2069), with which "ppA" displays as "App".
* The links (``client_uri``, ``logo_uri``, ``tos_uri``, ``policy_uri``) are decoration
  and self-asserted, so they are treated as for DCR metadata
  (``clientinfo.safe_http_url``): a link that is not a plain http(s) URL is dropped,
  not a reason to refuse the client, and ``dropped`` names it for the log.
* The bytes: at most :data:`MAX_DOCUMENT_BYTES` (5,120, FastMCP's cap), UTF-8, and
  strict JSON (RFC 8259): no NaN or Infinity, no nesting deeper than
  :data:`MAX_NESTING`, and no key twice in an object (§4 leaves the meaning of a
  repeated name to each parser; a document with two ``client_id`` values would say
  one thing to this gate and another to the next reader).

Pure module: no I/O; the fetcher hands the body in.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, NoReturn, cast, get_args

from consentgate.clients.client_errors import ClientRuleError
from consentgate.clients.client_id_urls import ClientIdURL
from consentgate.core.clientinfo import MAX_NAME_LENGTH, safe_http_url
from consentgate.core.oauth.authorization_requests import parse_redirect_uri, redirect_uri_matches
from consentgate.core.oauth.oauth_errors import OAuthError

#: The largest response body the gate reads as a document (FastMCP's cap).
MAX_DOCUMENT_BYTES: Final = 5120
MAX_NESTING: Final = 32
MAX_REDIRECT_URIS: Final = 32
MAX_TYPES: Final = 16
MAX_TYPE_LENGTH: Final = 256
LINK_FIELDS: Final = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
SECRET_FIELDS: Final = ("client_secret", "client_secret_expires_at")
_DIRECTION_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_TYPE: Final = re.compile(r"[\x20-\x7e]+")

ApplicationType = Literal["web", "native"]
#: Token endpoint auth methods without a shared secret (RFC 7591 §2, RFC 7523, RFC 8705).
AuthMethod = Literal["none", "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"]


class BadMetadataDocument(ClientRuleError):
    """A document the gate refuses; ``field`` names the part ("document" for the whole)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class ClientMetadataDocument:
    """A validated document: what the consent page, the matcher and the store use.

    It has the fields ``clientinfo.ClientMetadata`` reads, so the consent page shows it
    as it shows DCR metadata (as the client's own words).
    """

    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    client_uri: str | None
    logo_uri: str | None
    tos_uri: str | None
    policy_uri: str | None
    application_type: ApplicationType | None
    #: ``none`` when the document names none: a public document gives no secret.
    token_endpoint_auth_method: AuthMethod
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...]
    #: The link fields present but not safe http(s) URLs, dropped (for the log).
    dropped: tuple[str, ...]


# --- bytes to a JSON value -----------------------------------------------------------


def _pairs_once(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise BadMetadataDocument(
                "document", f"has the key {key[:40]!r} more than once in one object"
            )
        result[key] = value
    return result


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _nesting(text: str) -> int:
    depth = deepest = 0
    for char in _STRING.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_document_bytes(body: bytes) -> object:
    """The JSON value of a response body; raises :class:`BadMetadataDocument`."""
    if len(body) > MAX_DOCUMENT_BYTES:
        raise BadMetadataDocument("document", f"is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadMetadataDocument("document", "is not UTF-8 text") from None
    if _nesting(text) > MAX_NESTING:
        raise BadMetadataDocument("document", f"is nested deeper than {MAX_NESTING} levels")
    try:
        return cast(
            object,
            json.loads(text, object_pairs_hook=_pairs_once, parse_constant=_no_constant),
        )
    except BadMetadataDocument:
        raise
    except RecursionError:
        raise BadMetadataDocument("document", "is nested too deep") from None
    except ValueError as exc:  # json.JSONDecodeError, and a number with too many digits
        raise BadMetadataDocument("document", f"cannot be read as JSON ({exc})") from None


# --- a JSON value to a document ------------------------------------------------------


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


def _string(document: Mapping[str, object], field: str) -> str:
    if field not in document:
        raise BadMetadataDocument(field, "is missing")
    value = document[field]
    if not isinstance(value, str):
        raise BadMetadataDocument(field, "is not a string")
    if _has_surrogate(value):
        raise BadMetadataDocument(field, "contains a lone surrogate (not Unicode text)")
    return value


def _client_name(document: Mapping[str, object]) -> str:
    name = _string(document, "client_name")
    for char in name:
        category = unicodedata.category(char)
        if category == "Cc":
            raise BadMetadataDocument("client_name", "contains a control character")
        if category in ("Zl", "Zp"):
            raise BadMetadataDocument("client_name", "contains a line or paragraph separator")
        if char in _DIRECTION_CONTROLS:
            raise BadMetadataDocument(
                "client_name", "contains a writing-direction control character"
            )
    name = name.strip()
    if not name:
        raise BadMetadataDocument("client_name", "is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise BadMetadataDocument("client_name", f"is longer than {MAX_NAME_LENGTH} characters")
    return name


def _redirect_uris(document: Mapping[str, object]) -> tuple[str, ...]:
    if "redirect_uris" not in document:
        raise BadMetadataDocument("redirect_uris", "is missing")
    value = document["redirect_uris"]
    if not isinstance(value, list):
        raise BadMetadataDocument("redirect_uris", "is not a list")
    if not value:
        raise BadMetadataDocument("redirect_uris", "is empty")
    if len(value) > MAX_REDIRECT_URIS:
        raise BadMetadataDocument("redirect_uris", f"has more than {MAX_REDIRECT_URIS} entries")
    uris: list[str] = []
    for index, uri in enumerate(value):
        field = f"redirect_uris[{index}]"
        if not isinstance(uri, str):
            raise BadMetadataDocument(field, "is not a string")
        if _has_surrogate(uri):
            raise BadMetadataDocument(field, "contains a lone surrogate (not Unicode text)")
        try:
            parse_redirect_uri(uri)
        except OAuthError as exc:
            raise BadMetadataDocument(field, exc.description) from None
        uris.append(uri)
    return tuple(dict.fromkeys(uris))


def _link(document: Mapping[str, object], field: str) -> str | None:
    value = document.get(field)
    if isinstance(value, str) and not _has_surrogate(value) and safe_http_url(value):
        return value
    return None


def _auth_method(document: Mapping[str, object]) -> AuthMethod:
    if "token_endpoint_auth_method" not in document:
        return "none"
    method = _string(document, "token_endpoint_auth_method")
    if method.startswith("client_secret"):
        raise BadMetadataDocument(
            "token_endpoint_auth_method",
            "uses a shared secret, which a client named by a public document cannot have",
        )
    if method not in get_args(AuthMethod):
        raise BadMetadataDocument(
            "token_endpoint_auth_method",
            f"is not one of {', '.join(get_args(AuthMethod))}",
        )
    return cast(AuthMethod, method)


def _application_type(document: Mapping[str, object]) -> ApplicationType | None:
    if "application_type" not in document:
        return None
    value = _string(document, "application_type")
    if value not in get_args(ApplicationType):
        raise BadMetadataDocument("application_type", "is neither web nor native")
    return cast(ApplicationType, value)


def _types(document: Mapping[str, object], field: str, default: str) -> tuple[str, ...]:
    if field not in document:
        return (default,)
    value = document[field]
    if not isinstance(value, list) or not value:
        raise BadMetadataDocument(field, "is not a non-empty list")
    if len(value) > MAX_TYPES:
        raise BadMetadataDocument(field, f"has more than {MAX_TYPES} entries")
    for entry in value:
        if not isinstance(entry, str) or not _TYPE.fullmatch(entry):
            raise BadMetadataDocument(field, "has an entry that is not printable ASCII text")
        if len(entry) > MAX_TYPE_LENGTH:
            raise BadMetadataDocument(field, f"has an entry longer than {MAX_TYPE_LENGTH}")
    return tuple(dict.fromkeys(cast(list[str], value)))


def validate_document(value: object, client: ClientIdURL) -> ClientMetadataDocument:
    """The document fetched from ``client.url``, checked; raises :class:`BadMetadataDocument`
    naming the field and the problem (never a value from the document but a key)."""
    if not isinstance(value, dict):
        raise BadMetadataDocument("document", "is not a JSON object")
    document = cast(dict[str, object], value)
    for field in SECRET_FIELDS:
        if field in document:
            raise BadMetadataDocument(
                field, "must not be present: a public document cannot hold a client secret"
            )
    if _string(document, "client_id") != client.url:
        raise BadMetadataDocument("client_id", "differs from the URL the document came from")
    client_name = _client_name(document)
    redirect_uris = _redirect_uris(document)
    links = {field: _link(document, field) for field in LINK_FIELDS}
    return ClientMetadataDocument(
        client_id=client.url,
        client_name=client_name,
        redirect_uris=redirect_uris,
        client_uri=links["client_uri"],
        logo_uri=links["logo_uri"],
        tos_uri=links["tos_uri"],
        policy_uri=links["policy_uri"],
        application_type=_application_type(document),
        token_endpoint_auth_method=_auth_method(document),
        grant_types=_types(document, "grant_types", "authorization_code"),
        response_types=_types(document, "response_types", "code"),
        dropped=tuple(f for f in LINK_FIELDS if f in document and links[f] is None),
    )


# --- using a document ----------------------------------------------------------------


def redirect_uri_listed(document: ClientMetadataDocument, redirect_uri: str) -> bool:
    """Whether the document lists ``redirect_uri``: exactly, or an http loopback URI
    differing in port only (``core.oauth.redirect_uri_matches``, RFC 8252 §7.3)."""
    return any(redirect_uri_matches(redirect_uri, listed) for listed in document.redirect_uris)


def localhost_only(document: ClientMetadataDocument) -> bool:
    """Whether every redirect URI goes to this computer (loopback). MCP 2025-11-25 says
    to warn then: anyone can publish a document listing only loopback URIs, so the
    document alone cannot tell the real client from a local impersonator."""
    return all(parse_redirect_uri(uri).kind == "loopback" for uri in document.redirect_uris)


def read_document(body: bytes, client: ClientIdURL) -> ClientMetadataDocument:
    """A response body fetched from ``client.url``, parsed and validated: the one call
    the fetcher makes. Raises :class:`BadMetadataDocument`."""
    return validate_document(parse_document_bytes(body), client)
