"""Whether the paths the gate guards are the endpoints the upstream actually uses.

The gate asks for consent only at ``[upstream] authorize_path``, learns clients only
at ``register_path`` and checks the browser binding only at ``callback_path``; every
other path is relayed as it is. A typo in one of them fails open without a word: the
upstream's real authorization endpoint is relayed unconsented, its callback without
the binding check (FastMCP GHSA-rww4-4w9c-7733). The upstream says where they are:

* its authorization server metadata (RFC 8414 §2: ``authorization_endpoint``,
  ``registration_endpoint``, the latter only when it offers RFC 7591 registration),
  as absolute URLs built from the origin it believes it is reached at, which must be
  the gate's ``server.public_url`` (it is asked as a client's request through the
  gate would ask: :func:`metadata_request_headers`);
* its hand-off to the IdP (RFC 6749 §4.1.1), whose ``redirect_uri`` names the
  callback the IdP returns the browser to.

Each advertised URL is read as a request through the gate would be: at the public
origin (or relative to it), its path classified by the gate's own path rules. It
agrees when that gives the key's route; anything else, another origin included (a
client sent there goes around the gate), is an :class:`EndpointMismatch` naming the
key, the configured path and the advertised URL.

Pure module: the caller fetches the metadata (``check-config`` with the standard
library, ``serve`` and ``readyz`` through the upstream pool).
"""

from __future__ import annotations

import functools
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from consentgate.config.model import Config
from consentgate.core.oauth.paths import PathRules, Route

#: The metadata field, the key it checks, and the route the advertised path must reach.
ADVERTISED: Final = (
    ("authorization_endpoint", "upstream.authorize_path", Route.AUTHORIZE),
    ("registration_endpoint", "upstream.register_path", Route.REGISTER),
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
#: The key whose value must equal the advertised ``issuer`` exactly (RFC 9207 §2.4).
ISSUER_KEY: Final = "upstream.issuer"


@dataclass(frozen=True)
class EndpointMismatch:
    """A guarded path the upstream does not use: ``where`` names the advertised URL."""

    key: str
    configured: str
    where: str
    advertised: str

    def __str__(self) -> str:
        if self.key == ISSUER_KEY:
            return (
                f"{self.key}: {self.configured!r} is not the issuer the upstream advertises "
                f"({self.advertised!r}); clients would ignore the gate's error redirects"
            )
        return (
            f"{self.key}: {self.configured!r} is not the upstream's endpoint: it advertises "
            f"{self.where} {self.advertised!r}, which this gate does not guard"
        )


def parse_metadata(status: int, body: bytes) -> dict[str, object] | None:
    """The metadata document, or None when the answer is not one (no document to
    compare with: an error status, not JSON, or no ``authorization_endpoint``)."""
    if status != 200:
        return None
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict) or "authorization_endpoint" not in document:
        return None
    return document


def _origin(parts: urllib.parse.SplitResult) -> str | None:
    try:
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or _DEFAULT_PORTS[scheme]}"


def metadata_request_headers(config: Config) -> tuple[tuple[str, str], ...]:
    """The headers a client's request relayed by the gate carries about where it was
    sent (``core/forwarding``): an upstream that builds its URLs from them, rather
    than from its own setting, then advertises what clients are told."""
    public = urllib.parse.urlsplit(config.server.public_url)
    headers = [("X-Forwarded-Proto", public.scheme), ("X-Forwarded-Host", public.netloc)]
    if config.upstream.host_header == "preserve":
        headers.append(("Host", public.netloc))
    return tuple(headers)


def path_through_gate(url: str, config: Config) -> str | None:
    """The raw path a request to ``url`` reaches the gate with, or None when ``url``
    is neither at the gate's public origin nor relative to it. The upstream's own
    origin does not count: a client or an IdP sent there goes around the gate.

    Remembered per (``url``, public URL) for a URL of at most
    :data:`_LONGEST_REMEMBERED_URL` characters: the hand-off of every relayed sign-in
    names the same callback, and reading it took two splits and two origins (~4.5
    µs). A reload to another public URL asks afresh (it is part of the key)."""
    public_url = config.server.public_url
    if len(url) <= _LONGEST_REMEMBERED_URL:
        return _remembered_path(url, public_url)
    return _path_through(url, public_url)


#: Longest URL whose path through the gate is remembered.
_LONGEST_REMEMBERED_URL: Final = 512


def _path_through(url: str, public_url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    if url.startswith("/") and not url.startswith("//"):
        return parts.path
    public = _origin(urllib.parse.urlsplit(public_url))
    if _origin(parts) != public or parts.username is not None or parts.password is not None:
        return None
    return parts.path or "/"


_remembered_path: Final = functools.lru_cache(maxsize=64)(_path_through)


def _configured(config: Config, key: str) -> str:
    return str(getattr(config.upstream, key.split(".", 1)[1]))


def _agrees(url: object, config: Config, rules: PathRules, route: Route) -> bool:
    if not isinstance(url, str):
        return False
    path = path_through_gate(url, config)
    return path is not None and rules.classify(path).route is route


def endpoint_mismatches(
    document: Mapping[str, object], config: Config, rules: PathRules
) -> tuple[EndpointMismatch, ...]:
    """Each advertised endpoint the gate does not guard at its key's path; an absent
    ``registration_endpoint`` (an upstream without registration) is not compared.
    A configured ``[upstream] issuer`` that is not the advertised ``issuer`` byte for
    byte is one too: clients would not act on the errors the gate redirects with it
    (RFC 9207 §2.4)."""
    found: list[EndpointMismatch] = []
    for name, key, route in ADVERTISED:
        if name not in document:
            continue
        url = document[name]
        if not _agrees(url, config, rules, route):
            found.append(EndpointMismatch(key, _configured(config, key), name, str(url)))
    configured, advertised = config.upstream.issuer, document.get("issuer")
    if configured and isinstance(advertised, str) and advertised != configured:
        found.append(EndpointMismatch(ISSUER_KEY, configured, "issuer", advertised))
    return tuple(found)


def callback_mismatch(location: str, config: Config, rules: PathRules) -> EndpointMismatch | None:
    """A ``redirect_uri`` in the upstream's hand-off to the IdP (``location``) that does
    not come back through the gate's callback path, else None (none named: nothing
    to compare)."""
    try:
        query = urllib.parse.urlsplit(location).query
    except ValueError:
        return None
    return callback_mismatch_in(
        urllib.parse.parse_qsl(query, keep_blank_values=True), config, rules
    )


def callback_mismatch_in(
    pairs: Sequence[tuple[str, str]], config: Config, rules: PathRules
) -> EndpointMismatch | None:
    """:func:`callback_mismatch` of a hand-off's query the caller has parsed already
    (``parse_qsl`` with blank values kept): the gate's hot path parses it once."""
    for name, value in pairs:
        if name == "redirect_uri" and not _agrees(value, config, rules, Route.CALLBACK):
            key = "upstream.callback_path"
            return EndpointMismatch(key, _configured(config, key), "redirect_uri", value)
    return None
