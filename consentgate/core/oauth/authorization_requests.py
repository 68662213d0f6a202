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
from typing import Final, NamedTuple

from consentgate.core.memo import remembered
from consentgate.core.oauth.oauth_errors import (
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    RequestNotSupported,
    RequestUriNotSupported,
)
from consentgate.core.signed.records import (
    MAX_CLIENT_ID_LENGTH,
    MAX_SCOPE_LENGTH,
    MAX_URI_LENGTH,
)
from consentgate.core.trust.urls import (
    BadURL,
    browser_host,
    is_plainly_spelled,
    split_authority,
    split_url,
)

#: Parameters whose presence hides the real request from the gate (PAR, JAR).
REQUEST_OBJECT_PARAMETERS: Final = ("request_uri", "request")
MAX_PARAMETER_LENGTH: Final = 8192
MAX_PARAMETERS: Final = 64
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


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
                # Text without '%' or '+' decodes to itself (unquote_plus returns it).
                name = _decoded(raw_name) if "%" in raw_name or "+" in raw_name else raw_name
                value = _decoded(raw_value) if "%" in raw_value or "+" in raw_value else raw_value
            except UnicodeDecodeError:
                raise InvalidRequest("A parameter is not valid UTF-8.") from None
            if name in seen:
                raise InvalidRequest(
                    f"The parameter {name!r} is given more than once (RFC 6749 §3.1).",
                )
            if len(value) > MAX_PARAMETER_LENGTH:
                raise InvalidRequest(f"The parameter {name!r} is too long.")
            seen[name] = value
            pairs.append((name, value))
            if len(pairs) > MAX_PARAMETERS:
                raise InvalidRequest("The request has too many parameters.")
    return tuple(pairs)


@remembered(512)
def _decoded(text: str) -> str:
    """``unquote_plus(text, errors="strict")``."""
    return urllib.parse.unquote_plus(text, errors="strict")


def encode_parameters(parameters: Parameters) -> str:
    """The canonical query string for ``parameters``: one encoding, '&' separated.

    What ``urllib.parse.urlencode(parameters, quote_via=urllib.parse.quote)`` returns
    (``quote`` with ``safe=""`` on each name and value), faster: a text of unreserved
    characters only is its own encoding, and other texts (a client's redirect_uri and
    scope, the same on every request) are quoted through a bounded LRU. Names, a
    small vocabulary, are taken encoded from a bounded LRU of their own.
    """
    return "&".join([f"{_encoded_name(name)}={_encoded(value)}" for name, value in parameters])


_RESERVED_OR_OTHER: Final = re.compile(r"[^A-Za-z0-9_.~-]")


def _encoded(text: str) -> str:
    if _RESERVED_OR_OTHER.search(text) is None:
        return text
    return _quoted(text)


#: A parameter name's encoding: names come from a small vocabulary (RFC 6749 §4.1.1,
#: OIDC Core §3.1.2.1), so looking one up beats searching it for reserved characters.
_encoded_name: Final = remembered(64)(_encoded)


@remembered(512)
def _quoted(text: str) -> str:
    return urllib.parse.quote(text, safe="")


@dataclass(frozen=True)
class RedirectTarget:
    """What a person should know about where the authorization result goes.

    ``host`` is the host a browser will contact, in ASCII (see :mod:`urls`), empty
    for a custom scheme: there the authority (``evilapp://accounts.google.com/``)
    names no host anyone verifies, and any app may claim the scheme, so the page
    headlines the scheme instead. ``respelled`` is
    True when the URI spells its host differently from how the browser reads it
    (non-ASCII letters, percent escapes, number forms of an IPv4 address).
    """

    uri: str
    scheme: str
    host: str
    #: "https", "loopback" (an app on this computer), "custom" (an installed app),
    #: or "insecure" (plain http to another computer).
    kind: str
    before_host: str
    after_host: str
    respelled: bool = False

    @property
    def headline(self) -> str:
        """The destination in a few words: the host, or the app scheme."""
        if self.kind == "custom":
            return f"an app on this device that handles {self.scheme}:"
        return self.host


@remembered(MAX_URI_LENGTH)
def parse_redirect_uri(uri: str) -> RedirectTarget:
    """Validate an absolute redirect URI and describe it; raises InvalidRequest.

    A pure function of ``uri`` (``RedirectTarget`` is frozen): answers are remembered
    for URIs within :data:`MAX_URI_LENGTH` (parsing one, IDNA and ipaddress, is ~15
    µs; a refusal is not remembered, it raises)."""
    if not uri:
        raise InvalidRequest("The redirect_uri parameter is missing.")
    if len(uri) > MAX_URI_LENGTH:
        raise InvalidRequest(f"The redirect_uri is longer than {MAX_URI_LENGTH} characters.")
    if _CONTROL.search(uri) or " " in uri or "\\" in uri:
        raise InvalidRequest("The redirect_uri contains spaces or control characters.")
    try:
        parts = split_url(uri)
    except BadURL as exc:
        raise InvalidRequest(f"The redirect_uri is {exc}.") from None
    if not parts.scheme or not _SCHEME.match(parts.scheme):
        raise InvalidRequest("The redirect_uri is not an absolute URI.")
    if parts.fragment or "#" in uri:
        raise InvalidRequest("The redirect_uri must not contain a fragment (RFC 6749 §3.1.2).")
    scheme = parts.scheme.lower()
    if scheme in ("javascript", "data", "vbscript", "file", "blob", "about"):
        raise InvalidRequest(f"A {scheme}: redirect_uri is never acceptable.")
    if scheme in ("http", "https"):
        if "@" in parts.netloc:
            raise InvalidRequest("The redirect_uri must not contain credentials.")
        try:
            _, spelled, port = split_authority(parts.netloc)
            if port and not (port.isascii() and port.isdigit()):
                raise BadURL("a URL with a port that is not a number")
            host = browser_host(spelled)
        except BadURL as exc:
            raise InvalidRequest(f"The redirect_uri's host cannot be used: {exc}.") from None
        kind = "https" if scheme == "https" else ("loopback" if is_loopback(host) else "insecure")
        if scheme == "https" and is_loopback(host):
            kind = "loopback"
        start = len(parts.scheme) + 3  # "scheme://"; no userinfo (refused above)
        end = start + len(spelled)
        return RedirectTarget(
            uri,
            scheme,
            host,
            kind,
            uri[:start],
            uri[end:],
            respelled=not is_plainly_spelled(spelled, host),
        )
    return RedirectTarget(uri, scheme, "", "custom", "", "")


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


@remembered(MAX_URI_LENGTH)
def loopback_without_port(uri: str) -> str | None:
    """For ``http://127.0.0.1:PORT/path``, the URI without its port; else None.

    Pure; remembered for URIs within :data:`MAX_URI_LENGTH` (a bounded LRU)."""
    try:
        parts = split_url(uri)
        host = parts.hostname or ""
    except ValueError:  # BadURL included
        return None
    if parts.scheme != "http" or parts.username or parts.password:
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

    def question(self, subject: str) -> ConsentQuestion:
        """What the consent store is asked about this request for the browser ``subject``."""
        return ConsentQuestion(
            subject,
            self.client_id,
            consent_redirect_key(self.redirect_uri),
            self.scopes,
            self.resource,
        )


@dataclass(frozen=True, slots=True)
class ConsentQuestion:
    """The question the consent store answers: has ``subject`` approved ``client_id``
    for this redirect key, these scopes and this resource (RFC 8707)?

    Built once, here (:meth:`AuthorizationRequest.question`), so no handler builds the
    store's lookup key: the redirect URI is keyed without a loopback port (RFC 8252
    §7.3, :func:`consent_redirect_key`; docs/references.md)."""

    subject: str
    client_id: str
    redirect_key: str
    scopes: tuple[str, ...]
    resource: str

    @property
    def key(self) -> ApprovalKey:
        """What the approvals that may answer this question are kept under."""
        return ApprovalKey(self.subject, self.client_id, self.redirect_key, self.resource)


class ApprovalKey(NamedTuple):
    """What one remembered approval is kept and looked up under: the person (subject),
    the client, its redirect key and the resource (RFC 8707). Scopes are not part of
    it: an approval answers a question whose scopes it covers. One name for the key
    the store's cache, its backends and its records use (a plain tuple underneath, so
    it binds as SQL parameters as it is)."""

    subject: str
    client_id: str
    redirect_key: str
    resource: str


def parse_authorization_request(
    parameters: Parameters, *, allow_request_uri: bool, allow_request_object: bool
) -> AuthorizationRequest:
    """Validate what the gate needs; everything else is left to the upstream."""
    values = dict(parameters)
    for name, allowed in (("request_uri", allow_request_uri), ("request", allow_request_object)):
        if name in values and not allowed:
            refused = RequestNotSupported if name == "request" else RequestUriNotSupported
            raise refused(
                f"This gate does not accept the {name} parameter "
                f"({'PAR, RFC 9126' if name == 'request_uri' else 'JAR, RFC 9101'}): "
                "it hides the request from the consent check.",
            )
    client_id = values.get("client_id", "")
    if not client_id:
        raise InvalidRequest("The client_id parameter is missing.")
    if _CONTROL.search(client_id) or len(client_id) > MAX_CLIENT_ID_LENGTH:
        raise InvalidRequest("The client_id is malformed.")
    opaque = not values.keys().isdisjoint(REQUEST_OBJECT_PARAMETERS)
    redirect_uri = values.get("redirect_uri", "")
    if redirect_uri or not opaque:
        parse_redirect_uri(redirect_uri)
    scope = values.get("scope", "")
    if _CONTROL.search(scope):
        raise InvalidScope("The scope contains control characters.")
    # The values first seen first, without the empty ones between repeated spaces; the
    # length of the scopes joined is the same in any order.
    kept = dict.fromkeys(scope.split(" "))
    kept.pop("", None)
    scopes = tuple(kept)
    if len(" ".join(scopes)) > MAX_SCOPE_LENGTH:
        raise InvalidScope(f"The scope is longer than {MAX_SCOPE_LENGTH} characters.")
    resource = values.get("resource", "")
    if resource:
        try:
            absolute = bool(split_url(resource).scheme)
        except BadURL:
            absolute = False
        if _CONTROL.search(resource) or not absolute or len(resource) > MAX_URI_LENGTH:
            raise InvalidTarget(
                f"The resource must be an absolute URI (RFC 8707 §2) of at most "
                f"{MAX_URI_LENGTH} characters.",
            )
    asked = values.get("prompt")
    prompt = tuple([p for p in asked.split(" ") if p]) if asked else ()
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
    parts = split_url(redirect_uri)  # validated by parse_redirect_uri before
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
