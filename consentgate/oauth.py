"""Authorization requests: strict parsing, validation, redirect URI rules.

Rules and where they come from:

* RFC 6749 §3.1: request and response parameters MUST NOT be included more than
  once. A gate that reads the first ``redirect_uri`` while the upstream reads the
  last is bypassed, so any parameter given twice is refused — after decoding the
  names, since ``client%5Fid`` is ``client_id``.
* RFC 6749 §4.1.2.1: with a missing or invalid ``client_id`` or ``redirect_uri``
  the user is informed and the request is NOT redirected to that URI.
* RFC 9700 §2.1 and MCP: redirect URIs are compared as exact strings; RFC 8252
  §7.3: for http loopback redirect URIs only the port may differ.
* The request the gate checked is the request it forwards: parameters are
  re-encoded from the parsed list (:meth:`AuthorizationRequest.query`), so no
  parser difference (``;`` separators, ``+``, encoded names) can smuggle a second
  value past the check.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass
from typing import Final

#: Parameters whose presence hides the real request from the gate (PAR, JAR).
REQUEST_OBJECT_PARAMETERS: Final = ("request_uri", "request")
MAX_PARAMETER_LENGTH: Final = 8192
MAX_PARAMETERS: Final = 64
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


class OAuthRequestError(Exception):
    """A request the gate refuses locally with a 400 page, never a redirect."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


Parameters = tuple[tuple[str, str], ...]


def parse_parameters(*sources: str) -> Parameters:
    """Decode ``application/x-www-form-urlencoded`` strings; refuse repeated names.

    Names are compared after percent-decoding, across all sources (a parameter
    in both the query and a POST body is repeated too). Empty pieces between
    ``&`` are ignored; ``;`` is not a separator (WHATWG URL standard).
    """
    seen: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    for source in sources:
        if not source:
            continue
        for piece in source.split("&"):
            if not piece:
                continue
            raw_name, _, raw_value = piece.partition("=")
            try:
                name = urllib.parse.unquote_plus(raw_name, errors="strict")
                value = urllib.parse.unquote_plus(raw_value, errors="strict")
            except UnicodeDecodeError:
                raise OAuthRequestError(
                    "invalid_request", "A parameter is not valid UTF-8."
                ) from None
            if name in seen:
                raise OAuthRequestError(
                    "invalid_request",
                    f"The parameter {name!r} is given more than once (RFC 6749 §3.1).",
                )
            if len(value) > MAX_PARAMETER_LENGTH:
                raise OAuthRequestError("invalid_request", f"The parameter {name!r} is too long.")
            seen[name] = value
            pairs.append((name, value))
            if len(pairs) > MAX_PARAMETERS:
                raise OAuthRequestError("invalid_request", "The request has too many parameters.")
    return tuple(pairs)


def encode_parameters(parameters: Parameters) -> str:
    """The canonical query string for ``parameters``: one encoding, '&' separated."""
    return urllib.parse.urlencode(parameters, quote_via=urllib.parse.quote)


@dataclass(frozen=True)
class RedirectTarget:
    """What a person should know about where the authorization result goes."""

    uri: str
    scheme: str
    host: str
    #: "https", "loopback" (an app on this computer), "custom" (an installed app),
    #: or "insecure" (plain http to another computer).
    kind: str
    before_host: str
    after_host: str


def parse_redirect_uri(uri: str) -> RedirectTarget:
    """Validate an absolute redirect URI and describe it; raises OAuthRequestError."""
    if not uri:
        raise OAuthRequestError("invalid_request", "The redirect_uri parameter is missing.")
    if _CONTROL.search(uri) or " " in uri or "\\" in uri:
        raise OAuthRequestError(
            "invalid_request", "The redirect_uri contains spaces or control characters."
        )
    parts = urllib.parse.urlsplit(uri)
    if not parts.scheme or not _SCHEME.match(parts.scheme):
        raise OAuthRequestError("invalid_request", "The redirect_uri is not an absolute URI.")
    if parts.fragment or "#" in uri:
        raise OAuthRequestError(
            "invalid_request", "The redirect_uri must not contain a fragment (RFC 6749 §3.1.2)."
        )
    scheme = parts.scheme.lower()
    if scheme in ("javascript", "data", "vbscript", "file", "blob", "about"):
        raise OAuthRequestError("invalid_request", f"A {scheme}: redirect_uri is never acceptable.")
    if scheme in ("http", "https"):
        if parts.username is not None or parts.password is not None:
            raise OAuthRequestError(
                "invalid_request", "The redirect_uri must not contain credentials."
            )
        try:
            host = parts.hostname or ""
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise OAuthRequestError("invalid_request", "The redirect_uri has a bad port.") from None
        if not host:
            raise OAuthRequestError("invalid_request", "The redirect_uri has no host.")
        kind = "https" if scheme == "https" else ("loopback" if is_loopback(host) else "insecure")
        if scheme == "https" and is_loopback(host):
            kind = "loopback"
        netloc = parts.netloc
        host_start = netloc.lower().find(host) if host else -1
        prefix = f"{parts.scheme}://"
        if host_start < 0:
            return RedirectTarget(uri, scheme, host, kind, uri, "")
        start = len(prefix) + host_start
        end = start + len(host)
        return RedirectTarget(uri, scheme, host, kind, uri[:start], uri[end:])
    host = parts.netloc.lower()
    return RedirectTarget(uri, scheme, host, "custom", "", "")


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_uri_matches(requested: str, registered: str) -> bool:
    """Exact string match, except that an http loopback URI may differ in port only
    (RFC 8252 §7.3: the port is chosen by the app at run time)."""
    if requested == registered:
        return True
    return loopback_without_port(requested) is not None and loopback_without_port(
        requested
    ) == loopback_without_port(registered)


def loopback_without_port(uri: str) -> str | None:
    """For ``http://127.0.0.1:PORT/path``, the URI without its port; else None."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "http" or parts.username or parts.password:
        return None
    try:
        host = parts.hostname or ""
        parts.port  # noqa: B018
    except ValueError:
        return None
    if host not in LOOPBACK_HOSTS and not (host.startswith("127.") and is_loopback(host)):
        return None
    shown_host = f"[{host}]" if ":" in host else host
    return urllib.parse.urlunsplit(("http", shown_host, parts.path, parts.query, ""))


def consent_redirect_key(uri: str) -> str:
    """The redirect URI as consent records key it: loopback ports do not count."""
    return loopback_without_port(uri) or uri


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request, exactly as it will be forwarded."""

    parameters: Parameters
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    resource: str
    state: str | None
    prompt: tuple[str, ...]
    #: True when the request carries request_uri (PAR) or request (JAR): its real
    #: content is hidden from the gate.
    opaque: bool

    def query(self) -> str:
        return encode_parameters(self.parameters)


def parse_authorization_request(
    parameters: Parameters, *, allow_request_uri: bool, allow_request_object: bool
) -> AuthorizationRequest:
    """Validate what the gate needs; everything else is left to the upstream."""
    values = dict(parameters)
    for name, allowed in (("request_uri", allow_request_uri), ("request", allow_request_object)):
        if name in values and not allowed:
            raise OAuthRequestError(
                "request_not_supported" if name == "request" else "request_uri_not_supported",
                f"This gate does not accept the {name} parameter "
                f"({'PAR, RFC 9126' if name == 'request_uri' else 'JAR, RFC 9101'}): "
                "it hides the request from the consent check.",
            )
    client_id = values.get("client_id", "")
    if not client_id:
        raise OAuthRequestError("invalid_request", "The client_id parameter is missing.")
    if _CONTROL.search(client_id) or len(client_id) > 512:
        raise OAuthRequestError("invalid_request", "The client_id is malformed.")
    opaque = any(name in values for name in REQUEST_OBJECT_PARAMETERS)
    redirect_uri = values.get("redirect_uri", "")
    if redirect_uri or not opaque:
        parse_redirect_uri(redirect_uri)
    scope = values.get("scope", "")
    if _CONTROL.search(scope):
        raise OAuthRequestError("invalid_scope", "The scope contains control characters.")
    scopes = tuple(dict.fromkeys(s for s in scope.split(" ") if s))
    resource = values.get("resource", "")
    if resource and (_CONTROL.search(resource) or not urllib.parse.urlsplit(resource).scheme):
        raise OAuthRequestError(
            "invalid_target", "The resource must be an absolute URI (RFC 8707 §2)."
        )
    prompt = tuple(p for p in values.get("prompt", "").split(" ") if p)
    return AuthorizationRequest(
        parameters=parameters,
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        resource=resource,
        state=values.get("state"),
        prompt=prompt,
        opaque=opaque,
    )


def error_redirect(
    redirect_uri: str, error: str, *, state: str | None, issuer: str | None, description: str = ""
) -> str:
    """The redirect URI with an error response added to its query (RFC 6749 §4.1.2.1),
    with ``iss`` when the server names an issuer (RFC 9207 §2)."""
    parts = urllib.parse.urlsplit(redirect_uri)
    extra: list[tuple[str, str]] = [("error", error)]
    if description:
        extra.append(("error_description", description))
    if state is not None:
        extra.append(("state", state))
    if issuer:
        extra.append(("iss", issuer))
    addition = encode_parameters(tuple(extra))
    query = f"{parts.query}&{addition}" if parts.query else addition
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
